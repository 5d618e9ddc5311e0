"""BatchingParameters: TF Serving's text format, the YAML form, and their errors."""

from __future__ import annotations

import pytest

from tests.tfserving_models import TfServingTestdata
from tfaas.batching.parameters import BatchingParameters, from_mapping, parse_text, read_file
from tfaas.errors import InvalidArgument


def test_tf_serving_defaults() -> None:
    defaults = BatchingParameters()
    assert (defaults.max_batch_size, defaults.batch_timeout_micros, defaults.max_enqueued_batches) == (1000, 0, 10)
    assert defaults.num_batch_threads >= 1 and defaults.allowed_batch_sizes == ()


def test_tf_serving_test_file(tfserving_testdata: TfServingTestdata) -> None:
    parameters = read_file(str(tfserving_testdata.path("batching_config.txt")))
    assert parameters == BatchingParameters(
        max_batch_size=128, batch_timeout_micros=0, max_enqueued_batches=1000000, num_batch_threads=8
    )


def test_wrapped_scalars_repeated_sizes_and_comments() -> None:
    text = """
        # a comment
        max_batch_size { value: 8 }
        batch_timeout_micros { value: 2500 }
        thread_pool_name { value: "ignored" }
        allowed_batch_sizes: 2
        allowed_batch_sizes: 8
    """
    parameters = parse_text(text, "f.txt")
    assert (parameters.max_batch_size, parameters.batch_timeout_seconds) == (8, 0.0025)
    assert parameters.allowed_batch_sizes == (2, 8)
    assert [parameters.padded_size(rows) for rows in (1, 2, 3, 8)] == [2, 2, 8, 8]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_size { value: 4 } allowed_batch_sizes: 3", "Last entry in allowed_batch_sizes must match"),
        ("max_batch_size { value: 4 } allowed_batch_sizes: 4 allowed_batch_sizes: 2", "monotonically increasing"),
        ("max_batch_sze { value: 4 }", 'has no field named "max_batch_sze"'),
        ("max_batch_size: 4", "f.txt"),
        ("pad_variable_length_inputs: true", "pad_variable_length_inputs is not supported"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive"),
    ],
)
def test_text_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        parse_text(text, "f.txt")
    assert "f.txt" in caught.value.message


def test_yaml_mapping() -> None:
    parameters = from_mapping({"max_batch_size": 16, "allowed_batch_sizes": [4, 16]}, "models[0].batching")
    assert (parameters.max_batch_size, parameters.allowed_batch_sizes) == (16, (4, 16))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_batch": 3}, "unknown key"),
        ({"max_batch_size": "8"}, "max_batch_size: expected an integer"),
        ({"max_batch_size": True}, "expected an integer"),
        ({"allowed_batch_sizes": 8}, "expected a list of integers"),
        ({"max_batch_size": 8, "allowed_batch_sizes": [4]}, "Last entry"),
    ],
)
def test_yaml_errors_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        from_mapping(raw, "models[0].batching")
    assert caught.value.message.startswith("models[0].batching")
