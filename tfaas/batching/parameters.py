"""``BatchingParameters``: TF Serving's knobs for dynamic batching, read from YAML or its text format.

The fields and their defaults are TF Serving's (``session_bundle_config.proto``, ``BatchingParameters``):

- ``max_batch_size`` (1000): rows in one batch.
- ``batch_timeout_micros`` (0): how long a batch that is not full waits for more rows once a batch
  thread could take it. 0 means "no waiting": requests still share a batch whenever they arrive while
  every batch thread is busy, which is when batching pays.
- ``max_enqueued_batches`` (10): batches a queue may hold; a request that needs one more is refused
  with UNAVAILABLE (HTTP 503).
- ``num_batch_threads`` (the number of CPUs): batches that run at the same time.
- ``allowed_batch_sizes`` (none): a batch is padded up to the next of these sizes (rows copied from
  its first row, then dropped from the answer); increasing, the last equal to ``max_batch_size``.

TF Serving's text file (``--batching_parameters_file``) writes the scalars as wrapper messages,
``max_batch_size { value: 128 }``; it is parsed with protobuf's own text-format parser against a
message declared here with TF Serving's field names and numbers, so any file TF Serving accepts
parses the same way (``thread_pool_name`` is read and ignored: each model has its own threads).

TF Serving refuses a request with more rows than ``max_batch_size`` unless its
``enable_large_batch_splitting`` is set; tfaas runs such a request on its own instead (it is a full
batch already), so that field and ``max_execution_batch_size`` are not declared, and a file that
sets them is refused with protobuf's "has no field named" error rather than silently misread.
Neither is ``pad_variable_length_inputs`` supported: it is refused by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from tfaas.errors import InvalidArgument

_WRAPPED_INTS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
YAML_KEYS = (*_WRAPPED_INTS, "allowed_batch_sizes")


@dataclass(frozen=True)
class BatchingParameters:
    """How one model's requests are batched; see the module docstring for each field."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be positive; got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise InvalidArgument(f"batch_timeout_micros must be non-negative; got {self.batch_timeout_micros}")
        _check_allowed_sizes(self.allowed_batch_sizes, self.max_batch_size)

    @property
    def batch_timeout_seconds(self) -> float:
        return self.batch_timeout_micros / 1e6

    def padded_size(self, rows: int) -> int:
        """The batch size ``rows`` rows are padded to: the next allowed size, or ``rows`` itself."""
        return next((size for size in self.allowed_batch_sizes if size >= rows), rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for logs."""
        return {name: getattr(self, name) for name in YAML_KEYS}


def _check_allowed_sizes(sizes: tuple[int, ...], max_batch_size: int) -> None:
    """TF Serving's rules for ``allowed_batch_sizes``, with its messages."""
    if not sizes:
        return
    if any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
        raise InvalidArgument(f"allowed_batch_sizes entries must be positive and monotonically increasing; got {sizes}")
    if sizes[-1] != max_batch_size:
        raise InvalidArgument(
            "Last entry in allowed_batch_sizes must match max_batch_size; "
            f"last entry was {sizes[-1]}; expected {max_batch_size}"
        )


def from_mapping(raw: Mapping[str, Any], where: str) -> BatchingParameters:
    """Parameters from a YAML mapping with the same names as the text format (plain values, not wrappers).

    Raises ``InvalidArgument`` naming ``where`` and the key for unknown keys and bad values.
    """
    unknown = sorted(set(raw) - set(YAML_KEYS))
    if unknown:
        raise InvalidArgument(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(YAML_KEYS)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "allowed_batch_sizes":
            if not isinstance(value, list) or not all(_is_int(item) for item in value):
                raise InvalidArgument(f"{where}.{key}: expected a list of integers, got {value!r}")
            values[key] = tuple(value)
        elif _is_int(value):
            values[key] = value
        else:
            raise InvalidArgument(f"{where}.{key}: expected an integer, got {value!r}")
    try:
        return BatchingParameters(**values)
    except InvalidArgument as error:
        raise InvalidArgument(f"{where}: {error.message}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_text(text: str, where: str) -> BatchingParameters:
    """Parameters from TF Serving's ``BatchingParameters`` text format; ``where`` names the file in errors."""
    from google.protobuf import text_format

    message = _message_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        message_type = "tensorflow.serving.BatchingParameters"
        raise InvalidArgument(f"Error parsing text-format {message_type} from {where}: {error}") from None
    values: dict[str, Any] = {name: getattr(message, name).value for name in _WRAPPED_INTS if message.HasField(name)}
    if message.allowed_batch_sizes:
        values["allowed_batch_sizes"] = tuple(message.allowed_batch_sizes)
    if message.pad_variable_length_inputs:
        raise InvalidArgument(f"{where}: pad_variable_length_inputs is not supported")
    try:
        return BatchingParameters(**values)
    except InvalidArgument as error:
        raise InvalidArgument(f"{where}: {error.message}") from None


def read_file(path: str) -> BatchingParameters:
    """Parse the text-format file at ``path`` (``--batching_parameters_file``, ``batching_params.pbtxt``)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise InvalidArgument(f"Cannot read batching parameters file {path}: {error.strerror or error}") from None
    return parse_text(text, path)


@lru_cache(maxsize=1)
def _message_class() -> Any:
    """A ``tensorflow.serving.BatchingParameters`` message class, declared at run time.

    NOTE: tensorflow-serving-api does not ship ``session_bundle_config_pb2``; declaring the message from
    a descriptor keeps TF Serving's names, numbers and wrapper types without a generated module.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    int64, string = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    fields = (
        ("max_batch_size", 1, int64),
        ("batch_timeout_micros", 2, int64),
        ("max_enqueued_batches", 3, int64),
        ("num_batch_threads", 4, int64),
        ("thread_pool_name", 5, string),
        ("allowed_batch_sizes", 6, None),
        ("pad_variable_length_inputs", 7, None),
    )
    file = descriptor_pb2.FileDescriptorProto(
        name="tfaas/batching_parameters.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    message = file.message_type.add(name="BatchingParameters")
    for name, number, type_name in fields:
        entry = message.field.add(name=name, number=number)
        if type_name:
            entry.type, entry.type_name, entry.label = entry.TYPE_MESSAGE, type_name, entry.LABEL_OPTIONAL
        elif name == "allowed_batch_sizes":
            entry.type, entry.label = entry.TYPE_INT64, entry.LABEL_REPEATED
        else:
            entry.type, entry.label = entry.TYPE_BOOL, entry.LABEL_OPTIONAL
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
