"""Packaging for tfaas: ``pip install -e .`` (add ``[test]`` for the test tools)."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="tfaas",
    version="0.1.0",
    description="A TensorFlow model server with TF Serving's lifecycle and REST API, and TFaaS's API",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfaas", "tfaas.*"]),
    package_data={"tfaas.server": ["openapi.yaml"]},
    install_requires=[
        "tensorflow>=2.16,<3",
        # TF Serving's own protobuf modules: model_config_list parsing, status and warmup messages.
        "tensorflow-serving-api>=2.16,<3",
        "watchdog>=4",
        "flask>=3",
        "gunicorn>=22",
        "pyyaml>=6",
        "protobuf",
        "numpy",
        # A fast JSON codec for the request path (numpy arrays encode without Python loops).
        "orjson>=3.8",
    ],
    extras_require={"test": ["pytest>=7", "requests>=2", "ruff>=0.6", "openapi-spec-validator>=0.7"]},
    entry_points={"console_scripts": ["tfaas=tfaas.cli:main"]},
)
