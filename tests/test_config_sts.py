"""Simple TensorFlow Serving's flags and JSON model config file as tfaas settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.test_config import load
from tfaas.config import ModelConfig, custom_op_libraries, describe_options, read_model_config_file, reload_models
from tfaas.errors import ConfigError

# ---- basic auth and CORS ----------------------------------------------------------------------------


def test_stss_auth_flags_are_aliases_of_tfaas_options() -> None:
    settings = load("--enable_auth=True", "--auth_username", "ops", "--auth_password=s3cret", "--enable_cors")
    assert (settings.enable_basic_auth, settings.basic_auth_username, settings.basic_auth_password) == (
        True,
        "ops",
        "s3cret",
    )
    assert settings.enable_cors
    tfaas_names = load("--enable_basic_auth", "--basic_auth_password", "pw", env={"TFAAS_ENABLE_CORS": "false"})
    assert (tfaas_names.enable_basic_auth, tfaas_names.basic_auth_username, tfaas_names.enable_cors) == (
        True,
        "admin",
        False,
    )
    assert "`--enable_auth`" in describe_options() and "`--auth_password`" in describe_options()


def test_auth_and_cors_are_off_by_default() -> None:
    settings = load()
    assert not settings.enable_basic_auth and not settings.enable_cors


def test_basic_auth_needs_a_password_and_a_user_name_without_colon() -> None:
    with pytest.raises(ConfigError, match="basic_auth_password: must be set with enable_basic_auth"):
        load("--enable_auth")
    with pytest.raises(ConfigError, match="basic_auth_username: must not contain ':'"):
        load("--auth_username=a:b")


# ---- --session_config, --reload_models ---------------------------------------------------------------


def test_session_config_thread_counts_set_tensorflows_pools() -> None:
    settings = load("--session_config", '{"intra_op_parallelism_threads": 2, "inter_op_parallelism_threads": 3}')
    assert (settings.tensorflow_intra_op_parallelism, settings.tensorflow_inter_op_parallelism) == (2, 3)


def test_tfaas_own_flags_win_over_stss() -> None:
    settings = load(
        "--tensorflow_intra_op_parallelism=4",
        '--session_config={"intra_op_parallelism_threads": 2}',
        "--reload_models=false",
        "--file_system_poll_wait_seconds=5",
    )
    assert (settings.tensorflow_intra_op_parallelism, settings.file_system_poll_wait_seconds) == (4, 5.0)


def test_session_config_gpu_and_placement_keys_are_accepted_and_said_not_applied(caplog) -> None:
    config = {"allow_growth": True, "per_process_gpu_memory_fraction": 0.5, "log_device_placement": True}
    with caplog.at_level(logging.WARNING, logger="tfaas.config"):
        settings = load("--session_config", json.dumps(config))
    assert settings.tensorflow_intra_op_parallelism == 0
    assert "allow_growth, per_process_gpu_memory_fraction, log_device_placement not applied" in caplog.text


@pytest.mark.parametrize(
    "text,message",
    [
        ("{", "--session_config: invalid JSON"),
        ("[1]", "--session_config: expected a JSON object"),
        ('{"gpu_options": {}}', "--session_config: unknown key(s) 'gpu_options'"),
        ('{"intra_op_parallelism_threads": -1}', "--session_config.intra_op_parallelism_threads: must be >= 0"),
        ('{"inter_op_parallelism_threads": "x"}', "--session_config.inter_op_parallelism_threads: expected an integer"),
    ],
)
def test_a_bad_session_config_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load("--session_config", text)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "argv,poll",
    [((), 1.0), (("--reload_models",), 1.0), (("--reload_models=True",), 1.0), (("--reload_models=false",), 0.0)],
)
def test_reload_models_true_is_tfaas_default_and_false_scans_once(argv: tuple[str, ...], poll: float) -> None:
    assert load(*argv).file_system_poll_wait_seconds == poll


def test_reload_models_takes_a_boolean() -> None:
    with pytest.raises(ConfigError, match="--reload_models: expected true or false"):
        load("--reload_models=sometimes")


# ---- --custom_op_paths -------------------------------------------------------------------------------


def test_custom_op_paths_name_libraries_and_directories_of_them(tmp_path: Path, monkeypatch) -> None:
    for name in ("b.so", "a.so", "notes.txt"):
        (tmp_path / "ops" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "ops" / name).write_text("")
    (tmp_path / "single.so").write_text("")
    monkeypatch.chdir(tmp_path)
    settings = load("--custom_op_paths", "ops/, single.so")
    assert custom_op_libraries(settings.custom_op_paths) == [
        str(tmp_path / "ops" / "a.so"),
        str(tmp_path / "ops" / "b.so"),
        str(tmp_path / "single.so"),
    ]
    assert custom_op_libraries("") == []


def test_a_custom_op_path_that_does_not_exist_fails_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load(f"--custom_op_paths={tmp_path / 'missing'}")
    assert str(error.value) == (
        f"custom_op_paths: no such file or directory: {tmp_path / 'missing'} (from --custom_op_paths)"
    )


# ---- STS's JSON model config file ----------------------------------------------------------------------


def sts_config(tmp_path: Path, models: list) -> Path:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"model_config_list": models}))
    return path


def test_stss_json_model_config_file_is_read_beside_tf_servings_text_format(tmp_path: Path) -> None:
    config = sts_config(
        tmp_path,
        [
            {"name": "default", "base_path": "./models/template/", "platform": "tensorflow", "custom_op_paths": ""},
            {"name": "images", "base_path": str(tmp_path / "images"), "session_config": {}},
        ],
    )
    settings = load("--model_config_file", str(config))
    assert settings.models == (
        ModelConfig(name="default", base_path=str(tmp_path / "models" / "template")),
        ModelConfig(name="images", base_path=str(tmp_path / "images")),
    )
    assert reload_models(settings) == settings.models


def test_a_models_session_config_is_said_not_applied(tmp_path: Path, caplog) -> None:
    config = sts_config(tmp_path, [{"name": "m", "base_path": "m", "session_config": {"allow_growth": True}}])
    with caplog.at_level(logging.WARNING, logger="tfaas.config"):
        read_model_config_file(str(config))
    assert "models[0].session_config is not applied" in caplog.text


@pytest.mark.parametrize(
    "content,message",
    [
        ("{", "invalid JSON"),
        ('{"models": []}', 'expected {"model_config_list": [...]}'),
        ('{"model_config_list": [1]}', "models[0]: expected an object with name and base_path"),
        ('{"model_config_list": [{"name": "m", "base_path": "m", "version": 1}]}', "unknown key(s) 'version'"),
        ('{"model_config_list": [{"name": "m", "base_path": "m", "platform": "mxnet"}]}', "unsupported platform mxnet"),
        ('{"model_config_list": [{"base_path": "m"}]}', "models[0].name: must not be empty"),
        (
            '{"model_config_list": [{"name": "m", "base_path": "m", "custom_op_paths": "./ops"}]}',
            "models[0].custom_op_paths: set custom_op_paths for the whole server instead",
        ),
    ],
)
def test_a_bad_json_model_config_is_refused_naming_the_model(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        read_model_config_file(str(path))
    assert message in str(error.value) and str(path) in str(error.value)
