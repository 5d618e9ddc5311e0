# Shortcuts; CI runs .ci/run, which runs the README's test command.
.PHONY: install test lint format bench

install:
	python3 -m pip install -e '.[test]'

test:
	python3 -m pytest -q

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .

bench:
	python3 perf/swap.py
