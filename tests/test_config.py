"""Tests for tfaas.config: option layers, TF Serving's text format, YAML models and validation."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.tfserving_models import TfServingTestdata
from tfaas.config import (
    OPTIONS,
    ModelConfig,
    Settings,
    VersionLabels,
    add_arguments,
    describe_options,
    load_settings,
    parse_channel_arguments,
    read_model_config_file,
)
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> argparse.Namespace:
    """Parse ``argv`` with a parser that has exactly the tfaas options."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def load(*argv: str, env: dict[str, str] | None = None) -> Settings:
    """Load settings from ``argv`` and ``env`` only (never the real environment)."""
    return load_settings(parse(*argv), environ=env or {})


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` and return the path."""
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def yaml_models(tmp_path: Path, models_yaml: str) -> tuple[ModelConfig, ...]:
    """Load the models of a YAML settings file whose ``models:`` block is ``models_yaml``."""
    config = write(tmp_path / "tfaas.yaml", "models:\n" + textwrap.indent(textwrap.dedent(models_yaml), "  "))
    return load("--config", str(config)).models


def yaml_error(tmp_path: Path, models_yaml: str) -> str:
    """The ConfigError message for a YAML ``models:`` block."""
    with pytest.raises(ConfigError) as info:
        yaml_models(tmp_path, models_yaml)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Defaults, layers and precedence.


def test_defaults_without_any_layer() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.rest_api_port == 8501
    assert settings.host == "0.0.0.0"
    assert settings.model_name == "default"
    assert settings.file_system_poll_wait_seconds == 1.0
    assert settings.max_num_load_retries == -1
    assert settings.models == ()


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = write(
        tmp_path / "tfaas.yaml",
        """\
        rest_api_port: 7001
        threads: 3
        workers: 2
        """,
    )
    env = {"TFAAS_REST_API_PORT": "7002", "TFAAS_THREADS": "4", "TFAAS_CONFIG_FILE": str(config)}
    settings = load("--rest_api_port", "7003", env=env)
    assert settings.rest_api_port == 7003  # CLI beats env and file
    assert settings.threads == 4  # env beats file
    assert settings.workers == 2  # file beats default
    assert settings.num_load_threads == 2  # default
    assert settings.config_file == str(config)


def test_cli_config_flag_beats_env_config_file(tmp_path: Path) -> None:
    from_env = write(tmp_path / "env.yaml", "workers: 5\n")
    from_cli = write(tmp_path / "cli.yaml", "workers: 6\n")
    settings = load("--config", str(from_cli), env={"TFAAS_CONFIG_FILE": str(from_env)})
    assert settings.workers == 6


def test_dashed_flag_aliases() -> None:
    settings = load(
        "--rest-api-port=9000",
        "--model-name=m",
        "--model-base-path=/srv/m",
        "--file-system-poll-wait-seconds=-1",
        "--max-num-load-retries=3",
        "--log-level=debug",
    )
    assert settings.rest_api_port == 9000
    assert settings.file_system_poll_wait_seconds == -1.0
    assert settings.max_num_load_retries == 3
    assert settings.log_level == "debug"
    assert settings.models == (ModelConfig(name="m", base_path="/srv/m"),)


def test_env_vars_for_every_type() -> None:
    env = {
        "TFAAS_HOST": "127.0.0.1",
        "TFAAS_WORKERS": "3",
        "TFAAS_VERSION_SETTLE_SECONDS": "0.5",
        "TFAAS_MODEL_NAME": "env_model",
        "TFAAS_MODEL_BASE_PATH": "/srv/env_model",
    }
    settings = load(env=env)
    assert (settings.host, settings.workers, settings.version_settle_seconds) == ("127.0.0.1", 3, 0.5)
    assert settings.models == (ModelConfig(name="env_model", base_path="/srv/env_model"),)


def test_empty_env_var_counts_as_unset() -> None:
    assert load(env={"TFAAS_REST_API_PORT": ""}).rest_api_port == 8501


def test_namespace_without_tfaas_attributes_is_accepted() -> None:
    assert load_settings(argparse.Namespace(verbose=True), environ={}) == Settings()


def test_every_option_has_flag_env_and_doc() -> None:
    names = [option.name for option in OPTIONS]
    assert len(names) == len(set(names))
    derived = {"models", "batching_parameters"}  # NOTE: built from options, not options themselves
    assert set(names) == {f for f in Settings.__dataclass_fields__ if f not in derived}
    for option in OPTIONS:
        assert option.doc and option.env == "TFAAS_" + option.name.upper()
    by_name = {option.name: option for option in OPTIONS}
    assert by_name["config_file"].flags == ("--config",)
    assert by_name["rest_api_port"].flags == ("--rest_api_port", "--rest-api-port")
    assert by_name["grpc_port"].flags == ("--port",)  # NOTE: TF Serving's name for its gRPC port


def test_grpc_options_as_tf_serving_takes_them() -> None:
    settings = load(
        "--port",
        "0",
        "--grpc_socket_path",
        "grpc.sock",
        "--grpc_channel_arguments",
        "grpc.max_receive_message_length=1048576, grpc.primary_user_agent=x=y,big=4294967296",
    )
    assert settings.grpc_port == 0  # NOTE: off (TF Serving cannot turn gRPC off)
    assert settings.grpc_socket_path == str(Path.cwd() / "grpc.sock")
    assert parse_channel_arguments(settings.grpc_channel_arguments) == [
        ("grpc.max_receive_message_length", 1048576),  # NOTE: an int32 passes as an int ...
        ("grpc.primary_user_agent", "x=y"),
        ("big", "4294967296"),  # NOTE: ... and anything else as text, as TF Serving passes it
    ]
    assert Settings().grpc_port == 8500 and parse_channel_arguments("") == []


def test_describe_options_is_a_markdown_table_of_every_option() -> None:
    table = describe_options()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(OPTIONS)
    assert "`--model_config_file`" in table and "`TFAAS_REST_API_PORT`" in table


def test_to_dict_is_plain(tmp_path: Path) -> None:
    settings = load("--model_base_path", str(tmp_path))
    data = settings.to_dict()
    assert data["rest_api_port"] == 8501
    assert data["models"] == [
        {
            "name": "default",
            "base_path": str(tmp_path),
            "model_platform": "tensorflow",
            "version_policy": "latest: 1",
            "swap_policy": "availability",
            "version_labels": {},
            "settle_seconds": None,
            "batching": None,
        }
    ]


def test_importing_config_does_not_import_tensorflow_or_flask() -> None:
    code = "import sys, tfaas.config; print(any(m in sys.modules for m in ('tensorflow', 'flask')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------
# Option validation.


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rest_api_port", "abc"], "rest_api_port: expected an integer, got 'abc' (from --rest_api_port)"),
        (["--rest_api_port", "0"], "rest_api_port: must be between 1 and 65535"),
        (["--rest_api_port", "65536"], "rest_api_port: must be between 1 and 65535"),
        (["--workers", "-1"], "workers: must be >= 0"),
        (["--threads", "0"], "threads: must be >= 1"),
        (["--num_load_threads", "0"], "num_load_threads: must be >= 1"),
        (["--num_unload_threads", "-2"], "num_unload_threads: must be >= 1"),
        (["--max_num_load_retries", "-2"], "max_num_load_retries: must be >= -1"),
        (["--version_settle_seconds", "-1"], "version_settle_seconds: must be >= 0"),
        (["--graceful_timeout", "-5"], "graceful_timeout: must be >= 0"),
        (["--load_retry_initial_seconds", "0"], "load_retry_initial_seconds: must be > 0"),
        (["--file_system_poll_wait_seconds", "often"], "file_system_poll_wait_seconds: expected a number"),
        (["--version_settle_seconds", "nan"], "version_settle_seconds: expected a number, got 'nan'"),
        (["--log_level", "loud"], "log_level: must be one of debug, info, warning, error, critical"),
        (["--host", " "], "host: must not be empty"),
        (
            ["--load_retry_initial_seconds", "10", "--load_retry_max_seconds", "5"],
            "load_retry_max_seconds: must be >= load_retry_initial_seconds (10.0)",
        ),
        (["--model_base_path", "gs://bucket/model"], "model_base_path: URIs are not supported"),
        (["--model_name", "a/b", "--model_base_path", "/m"], "model_name: invalid model name 'a/b'"),
        (["--port", "65536"], "grpc_port: must be between 0 and 65535 (from --port)"),
        (["--port", "8501"], "grpc_port: must differ from rest_api_port (8501)"),
        (["--grpc_max_threads", "-1"], "grpc_max_threads: must be >= 0"),
        (["--grpc_channel_arguments", "grpc.a=1,oops"], "grpc_channel_arguments: 'oops' is not key=value"),
        (["--grpc_channel_arguments", "=1"], "grpc_channel_arguments: '=1' is not key=value"),
    ],
)
def test_invalid_option_values(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(*argv)
    assert message in str(info.value)


def test_env_type_error_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"workers: expected an integer, got 'many' \(from TFAAS_WORKERS\)"):
        load(env={"TFAAS_WORKERS": "many"})


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('rest_api_port: "abc"\n', "rest_api_port: expected an integer, got 'abc'"),
        ("rest_api_port: 80.5\n", "rest_api_port: expected an integer, got 80.5"),
        ("workers: yes\n", "workers: expected an integer, got True"),
        ("host: 42\n", "host: expected a string, got 42"),
        ("unknown_thing: 1\nother: 2\n", "unknown key(s) 'other', 'unknown_thing'"),
        ("config_file: x.yaml\n", "unknown key(s) 'config_file'"),
        ("- just\n- a list\n", "expected a mapping of option names at the top level"),
        ("rest_api_port: [\n", "invalid YAML"),
        ("models: {name: m}\n", "models: expected a list"),
    ],
)
def test_invalid_yaml_settings(tmp_path: Path, yaml_text: str, message: str) -> None:
    config = write(tmp_path / "tfaas.yaml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load("--config", str(config))
    assert message in str(info.value)
    assert str(config) in str(info.value)


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="cannot read config file"):
        load("--config", str(missing))


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    config = write(tmp_path / "tfaas.yaml", "# nothing yet\n")
    assert load("--config", str(config)) == Settings(config_file=str(config))


# ------------------------------------------------------------------------------------------------
# Paths.


def test_relative_paths_in_yaml_are_resolved_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = write(
        tmp_path / "conf" / "tfaas.yaml",
        """\
        model_base_path: ../models/single
        models:
          - {name: a, base_path: models/a}
          - {name: b, base_path: ~/b}
        """,
    )
    settings = load("--config", str(config))
    assert settings.model_base_path == str(tmp_path / "models" / "single")
    assert [m.base_path for m in settings.models] == [
        str(tmp_path / "conf" / "models" / "a"),
        str(Path("~/b").expanduser()),
    ]


def test_relative_cli_paths_are_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load("--model_base_path", "models/./x/")
    assert settings.models[0].base_path == str(tmp_path / "models" / "x")


# ------------------------------------------------------------------------------------------------
# Which model list wins.


def test_single_model_flags_build_one_model() -> None:
    settings = load("--model_base_path", "/models/half_plus_two")
    assert settings.models == (ModelConfig(name="default", base_path="/models/half_plus_two"),)


def test_model_config_file_overrides_single_model_flags(tmp_path: Path) -> None:
    models = write(tmp_path / "models.config", 'model_config_list { config { name: "x" base_path: "/x" } }\n')
    settings = load("--model_config_file", str(models), "--model_name", "ignored", "--model_base_path", "/ignored")
    assert [m.name for m in settings.models] == ["x"]


def test_yaml_models_override_single_model_flags(tmp_path: Path) -> None:
    config = write(tmp_path / "tfaas.yaml", "models: [{name: y, base_path: /y}]\n")
    settings = load("--config", str(config), "--model_base_path", "/ignored")
    assert [m.name for m in settings.models] == ["y"]


def test_model_config_file_and_yaml_models_conflict(tmp_path: Path) -> None:
    models = write(tmp_path / "models.config", 'model_config_list { config { name: "x" base_path: "/x" } }\n')
    config = write(tmp_path / "tfaas.yaml", "models: [{name: y, base_path: /y}]\n")
    with pytest.raises(ConfigError, match="model_config_file: cannot be combined with 'models'"):
        load("--config", str(config), "--model_config_file", str(models))


def test_no_model_configured_gives_empty_models() -> None:
    assert load("--model_name", "lonely").models == ()


# ------------------------------------------------------------------------------------------------
# TF Serving's text format.


def test_tf_serving_good_model_config(tmp_path: Path, tfserving_testdata: TfServingTestdata) -> None:
    text = tfserving_testdata.path("good_model_config.txt").read_text(encoding="utf-8")
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(tmp_path / "half_plus_two"))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", str(tmp_path / "half_plus_three"))
    config = write(tmp_path / "good_model_config.txt", text)
    settings = load("--model_config_file", str(config))
    assert settings.models == (
        ModelConfig(name="half_plus_two", base_path=str(tmp_path / "half_plus_two")),
        ModelConfig(name="half_plus_three", base_path=str(tmp_path / "half_plus_three")),
    )


def test_tf_serving_bad_model_config_is_refused(tfserving_testdata: TfServingTestdata) -> None:
    bad = tfserving_testdata.path("bad_model_config.txt")
    with pytest.raises(ConfigError) as info:
        load("--model_config_file", str(bad))
    message = str(info.value)
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in message
    assert str(bad) in message
    assert "1:1" in message  # the parser's line:column


def test_text_format_policies_labels_and_relative_paths(tmp_path: Path) -> None:
    config = write(
        tmp_path / "models.config",
        """\
        model_config_list {
          config {
            name: "a"
            base_path: "models/a"
            model_platform: "tensorflow"
            model_version_policy { specific { versions: 1 versions: 2 } }
            version_labels { key: "stable" value: 1 }
            version_labels { key: "canary" value: 2 }
          }
          config { name: "b" base_path: "/b" model_version_policy { all {} } }
          config { name: "c" base_path: "/c" model_version_policy { latest { num_versions: 3 } } }
          config { name: "d" base_path: "/d" model_version_policy { latest {} } model_type: TENSORFLOW }
        }
        """,
    )
    a, b, c, d = read_model_config_file(str(config))
    assert a.base_path == str(tmp_path / "models" / "a")
    assert a.version_policy == ServableVersionPolicy(kind="specific", versions=(1, 2))
    assert a.version_labels == {"stable": 1, "canary": 2}
    assert b.version_policy == ServableVersionPolicy(kind="all")
    assert c.version_policy == ServableVersionPolicy(kind="latest", num_versions=3)
    assert d.version_policy == ServableVersionPolicy(kind="latest", num_versions=1)  # 0 means 1
    assert d.model_platform == "tensorflow"


@pytest.mark.parametrize(
    ("name", "text"), [("empty.config", "\n"), ("comments.config", "# soon\n"), ("empty.yaml", "")]
)
def test_a_file_that_sets_no_model_list_is_none(tmp_path: Path, name: str, text: str) -> None:
    assert read_model_config_file(str(write(tmp_path / name, text))) is None


@pytest.mark.parametrize(("name", "text"), [("list.config", "model_config_list {}\n"), ("list.yaml", "models: []\n")])
def test_an_explicit_empty_list_has_no_models(tmp_path: Path, name: str, text: str) -> None:
    assert read_model_config_file(str(write(tmp_path / name, text))) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'model_config_list { config { name: "x" base_path: "/x" } config { name: "x" base_path: "/y" } }',
            "models[1].name: duplicate model name 'x' (first at models[0]): "
            "Illegal to list model x multiple times in config list",
        ),
        (
            'model_config_list { config { name: "x" base_path: "/x" model_platform: "pytorch" } }',
            "models[0].model_platform: Model x requests unsupported platform pytorch",
        ),
        (
            'model_config_list { config { name: "x" base_path: "/x" model_type: OTHER } }',
            "models[0].model_platform: Model x requests unsupported platform other",
        ),
        (
            'model_config_list { config { name: "x" base_path: "/x" model_type: TENSORFLOW '
            'model_platform: "tensorflow" } }',
            "models[0]: Illegal setting both model_type(deprecated) and model_platform.",
        ),
        ('model_config_list { config { name: "x" } }', "models[0].base_path: must not be empty"),
        ('model_config_list { config { base_path: "/x" } }', "models[0].name: must not be empty"),
        (
            'model_config_list { config { name: "x" base_path: "/x" version_labels { key: "s" value: -1 } } }',
            "models[0].labels.s: must be >= 0",
        ),
        ('custom_model_config { type_url: "x" }', "custom_model_config is not supported"),
    ],
)
def test_text_format_validation(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "models.config", text + "\n")
    with pytest.raises(ConfigError) as info:
        load("--model_config_file", str(config))
    assert message in str(info.value)
    assert str(config) in str(info.value)


def test_yaml_model_config_file(tmp_path: Path) -> None:
    as_list = write(tmp_path / "list.yaml", "- {name: a, base_path: a}\n")
    as_mapping = write(tmp_path / "mapping.yml", "models:\n  - {name: a, base_path: a}\n")
    expected = (ModelConfig(name="a", base_path=str(tmp_path / "a")),)
    assert load("--model_config_file", str(as_list)).models == expected
    assert load("--model_config_file", str(as_mapping)).models == expected


# ------------------------------------------------------------------------------------------------
# YAML models.


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", ServableVersionPolicy()),
        ("{latest: 3}", ServableVersionPolicy(kind="latest", num_versions=3)),
        ("{latest: {num_versions: 2}}", ServableVersionPolicy(kind="latest", num_versions=2)),
        ("all", ServableVersionPolicy(kind="all")),
        ("{all: {}}", ServableVersionPolicy(kind="all")),
        ("{all: null}", ServableVersionPolicy(kind="all")),
        ("{specific: [3, 1]}", ServableVersionPolicy(kind="specific", versions=(3, 1))),
        ("{specific: {versions: [7]}}", ServableVersionPolicy(kind="specific", versions=(7,))),
        ("{specific: []}", ServableVersionPolicy(kind="specific", versions=())),
    ],
)
def test_yaml_version_policy_forms(tmp_path: Path, policy: str, expected: ServableVersionPolicy) -> None:
    (model,) = yaml_models(tmp_path, f"- {{name: m, base_path: /m, version_policy: {policy}}}\n")
    assert model.version_policy == expected


def test_yaml_model_defaults_and_all_fields(tmp_path: Path) -> None:
    plain, full = yaml_models(
        tmp_path,
        """\
        - name: plain
          base_path: /plain
        - name: full.v2
          base_path: /full
          model_platform: tensorflow
          version_policy: {specific: [1, 2]}
          swap_policy: resource
          labels: {stable: 1, canary: 2}
          settle_seconds: 2.5
        """,
    )
    assert plain == ModelConfig(name="plain", base_path="/plain")
    assert plain.version_policy == ServableVersionPolicy()
    assert (plain.swap_policy, dict(plain.version_labels), plain.settle_seconds) == ("availability", {}, None)
    assert full.swap_policy == "resource"
    assert full.version_labels == {"stable": 1, "canary": 2}
    assert full.settle_seconds == 2.5


@pytest.mark.parametrize(
    ("models_yaml", "message"),
    [
        ("- {name: a, base_path: /a}\n- {name: b}\n", "models[1].base_path: must not be empty"),
        ('- {name: b, base_path: ""}\n', "models[0].base_path: must not be empty"),
        (
            "- {name: x, base_path: /a}\n- {name: x, base_path: /b}\n",
            "models[1].name: duplicate model name 'x'",
        ),
        ("- {name: a/b, base_path: /a}\n", "models[0].name: invalid model name 'a/b'"),
        ("- {name: 'a:b', base_path: /a}\n", "models[0].name: invalid model name 'a:b'"),
        ("- {base_path: /a}\n", "models[0].name: must not be empty"),
        ("- {name: 5, base_path: /a}\n", "models[0].name: expected a string, got 5"),
        (
            "- {name: a, base_path: /a, swap_policy: fast}\n",
            "models[0].swap_policy: must be one of availability, resource",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {latest: 0}}\n",
            "models[0].version_policy.latest: must be >= 1",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {latest: two}}\n",
            "models[0].version_policy.latest: expected an integer, got 'two'",
        ),
        (
            "- {name: a, base_path: /a, version_policy: newest}\n",
            "models[0].version_policy: unknown policy 'newest'",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {latest: 1, all: {}}}\n",
            "models[0].version_policy: expected 'latest', 'all'",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {all: 3}}\n",
            "models[0].version_policy.all: takes no arguments",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {specific: 3}}\n",
            "models[0].version_policy.specific: expected a list of versions",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {specific: [1, x]}}\n",
            "models[0].version_policy.specific[1]: expected an integer, got 'x'",
        ),
        (
            "- {name: a, base_path: /a, version_policy: {specific: [-3]}}\n",
            "models[0].version_policy.specific[0]: must be >= 0",
        ),
        (
            "- {name: a, base_path: /a, model_platform: onnx}\n",
            "models[0].model_platform: Model a requests unsupported platform onnx",
        ),
        (
            "- {name: a, base_path: /a, labels: {stable: x}}\n",
            "models[0].labels.stable: expected an integer, got 'x'",
        ),
        ("- {name: a, base_path: /a, labels: {stable: -1}}\n", "models[0].labels.stable: must be >= 0"),
        ("- {name: a, base_path: /a, labels: {'a/b': 1}}\n", "models[0].labels: invalid label 'a/b'"),
        (
            "- {name: a, base_path: /a, labels: [stable]}\n",
            "models[0].labels: expected a mapping of label to version",
        ),
        ("- {name: a, base_path: /a, settle_seconds: -1}\n", "models[0].settle_seconds: must be >= 0"),
        ("- {name: a, base_path: /a, color: red}\n", "models[0]: unknown key(s) 'color'"),
        ("- {name: a, base_path: 's3://bucket/a'}\n", "models[0].base_path: URIs are not supported"),
        ("- just-a-string\n", "models[0]: expected a mapping with name and base_path"),
    ],
)
def test_yaml_model_validation(tmp_path: Path, models_yaml: str, message: str) -> None:
    assert message in yaml_error(tmp_path, models_yaml)


# ------------------------------------------------------------------------------------------------
# ModelConfig itself.


def test_model_config_is_frozen_and_hashable_with_labels() -> None:
    model = ModelConfig(name="m", base_path="/m", version_labels={"stable": 1})
    assert isinstance(model.version_labels, VersionLabels)
    assert model.version_labels["stable"] == 1
    assert model == ModelConfig(name="m", base_path="/m", version_labels=VersionLabels([("stable", 1)]))
    assert hash(model) == hash(ModelConfig(name="m", base_path="/m", version_labels={"stable": 1}))
    with pytest.raises(AttributeError):
        model.name = "other"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# The shipped examples.


def test_example_yaml_settings_parse() -> None:
    settings = load("--config", str(REPO / "config" / "tfaas.example.yaml"))
    assert [m.name for m in settings.models] == ["half_plus_two", "big_model"]
    first, second = settings.models
    assert first.version_labels == {"stable": 123, "canary": 124}
    assert second.swap_policy == "resource"


def test_example_text_model_config_parses() -> None:
    settings = load("--model_config_file", str(REPO / "config" / "models.config.example"))
    assert [m.name for m in settings.models] == ["half_plus_two", "half_plus_three"]
    assert settings.models[0].version_labels == {"stable": 123, "canary": 124}
