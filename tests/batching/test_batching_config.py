"""Batching in the settings: TF Serving's flags, the per-model YAML key, and which models are batched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_config import load, write
from tfaas.batching.parameters import BatchingParameters
from tfaas.config import ModelConfig, Settings
from tfaas.errors import ConfigError
from tfaas.server_core import batching_enabled


def test_flags_read_tf_servings_batching_parameters_file(tmp_path: Path) -> None:
    path = write(tmp_path / "batching.txt", "max_batch_size { value: 32 } batch_timeout_micros { value: 1000 }")
    settings = load("--enable_batching", "--batching_parameters_file", str(path), "--model_base_path", str(tmp_path))
    assert settings.enable_batching
    assert settings.batching_parameters == BatchingParameters(max_batch_size=32, batch_timeout_micros=1000)


def test_a_parameters_file_without_enable_batching_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "batching.txt", "max_batch_size { value: 32 }")
    with pytest.raises(ConfigError, match="without enabling batching"):
        load("--enable_batching=false", "--batching_parameters_file", str(path))


def test_a_broken_parameters_file_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "batching.txt", "max_batch_size { value: 32 } allowed_batch_sizes: 16")
    with pytest.raises(ConfigError, match=r"batching_parameters_file: .*batching.txt: Last entry"):
        load("--enable_batching", "--batching_parameters_file", str(path))


def test_per_model_batching_in_yaml(tmp_path: Path) -> None:
    config = write(
        tmp_path / "tfaas.yaml",
        """
        models:
          - {name: a, base_path: /m/a, batching: {max_batch_size: 16, allowed_batch_sizes: [8, 16]}}
          - {name: b, base_path: /m/b, batching: false}
          - {name: c, base_path: /m/c, batching: true}
          - {name: d, base_path: /m/d}
        """,
    )
    a, b, c, d = load("--config", str(config)).models
    assert a.batching == BatchingParameters(max_batch_size=16, allowed_batch_sizes=(8, 16))
    assert (b.batching, c.batching, d.batching) == (False, True, None)


def test_per_model_batching_errors_name_the_model(tmp_path: Path) -> None:
    config = write(tmp_path / "tfaas.yaml", "models:\n  - {name: a, base_path: /m/a, batching: {max_batch: 1}}\n")
    with pytest.raises(ConfigError, match=r"models\[0\]\.batching: unknown key"):
        load("--config", str(config))
    config.write_text("models:\n  - {name: a, base_path: /m/a, batching: sometimes}\n")
    with pytest.raises(ConfigError, match=r"models\[0\]\.batching: expected true, false or a mapping"):
        load("--config", str(config))


@pytest.mark.parametrize(
    ("server_wide", "model", "batched"),
    [
        (False, None, False),
        (True, None, True),
        (True, False, False),
        (False, True, True),
        (False, BatchingParameters(max_batch_size=4), True),
    ],
)
def test_a_models_own_batching_wins_over_the_servers(server_wide: bool, model, batched: bool) -> None:
    settings = Settings(enable_batching=server_wide)
    assert batching_enabled(settings, ModelConfig(name="m", base_path="/m", batching=model)) is batched
