"""Large predict bodies parsed array by array: each long array of numbers read in blocks into one numpy array.

Why: parsed whole, a body of numbers becomes one Python object per number (~32 bytes, for 10-20 bytes of
text) before numpy packs them; a 20 MB body cost over 10 times its size in memory. Here a body is read in
two steps: its skeleton (the JSON with each long array, or the rows of named inputs, replaced by a
placeholder), then each long array (or the rows), cut between its elements into blocks of about
``BLOCK_BYTES`` of text, block by block into its array. The peak is the body, the arrays and one block's
Python objects.

A body this path cannot take exactly as the general path would (a number beyond int64 or float64, a
ragged or mixed array, strings inside the tensor, a long array elsewhere than a tensor's place) is declined:
the general path then parses it whole and answers in TF Serving's words. Both steps together parse every
byte of the body, so a body taken here is valid JSON (with TF Serving's NaN and Infinity).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import numpy as np
import orjson

from tfaas.codecs.json_tensor import JsonInputs, dense_leaves, dense_shape, input_codec, to_array
from tfaas.errors import InvalidArgument, Unimplemented
from tfaas.servables.servable import SignatureInfo

LARGE_BODY_BYTES = 1 << 20
"""Bodies from this size are tried here first (below it, Python objects cost at most a few MB)."""
ARRAY_BYTES = 64 << 10
"""Arrays with at least this much text are parsed in blocks; shorter ones stay in the skeleton."""
BLOCK_BYTES = 256 << 10
"""Text parsed at once: bounds the Python objects alive (a few MB: small ints in images cost ~10 times their text)."""
_MAX_QUOTES = 1024  # NOTE: a body of numeric tensors has a few keys; more strings are not for this path.
_MAX_BACKSLASHES = 64  # NOTE: read before a quote to tell whether it is escaped; a longer run is declined.
_PLACEHOLDER = "\0array {}"  # NOTE: a body holding "\u0000" is declined, so no string of it can be mistaken.
_NATURAL_DTYPES = {
    frozenset({bool}): np.dtype(np.bool_),
    frozenset({int}): np.dtype(np.int64),
    frozenset({float}): np.dtype(np.float64),
    frozenset({int, float}): np.dtype(np.float64),
}
"""The dtype an array is read in, from its leaves' Python types; it is cast to the input's dtype later."""
_INTS = [np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64)]
"""Where ints are kept, smallest first; none unsigned but uint8, so that any two promote to a signed int."""
_NON_FINITE_MARKS = [(b"-Infinity", b'"\\u0000-I"'), (b"Infinity", b'"\\u0000I"'), (b"NaN", b'"\\u0000N"')]
_NON_FINITE = {"\0-I": -np.inf, "\0I": np.inf, "\0N": np.nan}
"""TF Serving's NaN and Infinity tokens, which orjson refuses, read as marks (strings no body here holds) and
turned into floats; a token out of place leaves invalid JSON."""
_OPENING = re.compile(rb"[\s\[]*")
_ROW_SEPARATOR = re.compile(rb"\}\s*,")
_NAMED_ROWS = re.compile(rb'"instances"\s*:\s*(\[)\s*\{')


def parse_large_body(data: bytes) -> dict[str, Any] | None:
    """``data`` as a JSON object whose long arrays (the tensors of ``instances``, ``inputs`` or the named
    ``inputs``) are numpy arrays in place of lists, and whose rows of named inputs (``instances`` of
    objects) are one array per name; ``None`` for any other body."""
    if b"\\u0000" in data:
        return None
    found = _NAMED_ROWS.search(data)
    if found:
        return _parse_named_rows(data, found.start(1))
    spans = _array_spans(data)
    if not spans:
        return None
    pieces, position = [], 0
    for index, (start, end) in enumerate(spans):
        pieces += [data[position:start], orjson.dumps(_PLACEHOLDER.format(index))]
        position = end
    pieces.append(data[position:])
    try:
        skeleton = orjson.loads(b"".join(pieces))
    except orjson.JSONDecodeError:
        return None
    places = _tensor_places(skeleton)
    if places is None or len(places) != len(spans) or not _signature_name_is_text(skeleton):
        return None
    for (start, end), (holder, key) in zip(spans, places):
        array = _read_array(data, start, end)
        if array is None:
            return None
        holder[key] = array
    return skeleton


def _parse_named_rows(data: bytes, start: int) -> dict[str, Any] | None:
    """A body whose ``instances`` (from ``start``) are rows of named inputs, with ``instances`` as one array
    per name."""
    end = data.rfind(b"]") + 1
    try:
        skeleton = orjson.loads(data[:start] + orjson.dumps(_PLACEHOLDER.format(0)) + data[end:])
    except orjson.JSONDecodeError:
        return None
    places = _tensor_places(skeleton)
    if places != [(skeleton, "instances")] or not _signature_name_is_text(skeleton):
        return None
    columns = _read_named_rows(data, start, end)
    if columns is None:
        return None
    skeleton["instances"] = columns
    return skeleton


def _signature_name_is_text(skeleton: dict[str, Any]) -> bool:
    """Whether ``signature_name`` is absent or a string (else the general path names the error)."""
    return isinstance(skeleton.get("signature_name", ""), str)


def decode_large_body(body: dict[str, Any], signature: SignatureInfo) -> JsonInputs | None:
    """The inputs of ``signature`` from a body :func:`parse_large_body` read, each array cast exactly as the
    general path converts its numbers; ``None`` for anything else (the general path then explains it)."""
    aliases = sorted(signature.inputs)
    columnar = "inputs" in body
    if columnar == ("instances" in body):
        return None
    tensors = body["inputs" if columnar else "instances"]
    try:
        if isinstance(tensors, dict):
            if not set(aliases) <= tensors.keys() or not columnar and tensors.keys() != set(aliases):
                return None
            inputs = {alias: _input_array(tensors[alias], signature, alias) for alias in aliases}
        elif isinstance(tensors, np.ndarray) and len(aliases) == 1:
            inputs = {aliases[0]: _input_array(tensors, signature, aliases[0])}
        else:
            return None
    except (InvalidArgument, Unimplemented):
        return None
    if any(array is None for array in inputs.values()):
        return None
    return JsonInputs(inputs, columnar)


def _input_array(value: Any, signature: SignatureInfo, alias: str) -> np.ndarray | None:
    """``value`` (an array read here, or a short value of the skeleton) as input ``alias``'s dtype."""
    codec = input_codec(signature, alias)
    if not isinstance(value, np.ndarray):
        return to_array(value, codec)
    kind = value.dtype.kind
    if codec.kind == "float" and kind in "fiu":
        if value.dtype.itemsize == 8:  # NOTE: int64 as the general path reads a Python int: via float64
            value = value.astype(np.float64, copy=False)
        with np.errstate(over="ignore"):  # NOTE: beyond float32's range: +-inf, as in TF Serving
            return value.astype(codec.dtype, copy=False)
    if codec.kind == "int" and kind in "iu":
        limits = np.iinfo(codec.dtype)
        return value.astype(codec.dtype) if limits.min <= value.min() and value.max() <= limits.max else None
    if codec.kind == "bool" and kind == "b":
        return value
    return None


def _array_spans(data: bytes) -> list[tuple[int, int]] | None:
    """Where the long arrays are: ``[start, end)`` of each, from its ``[`` to its ``]``, each the value of a key.

    NOTE: numbers hold no quotes, so the text between two strings is either short or a key's value; a
    span that is not one whole array makes the skeleton or a block invalid JSON, and the body is declined.
    """
    quotes = _string_quotes(data)
    if quotes is None:
        return None
    spans = []
    for start, end in zip([0, *(close + 1 for close in quotes[1::2])], [*quotes[::2], len(data)]):
        first = data.find(b"[", start, end) if end - start >= ARRAY_BYTES else -1
        if first == -1:
            continue
        last = data.rfind(b"]", start, end)
        if last < first or data[start:first].strip() != b":":
            return None
        spans.append((first, last + 1))
    return spans


def _string_quotes(data: bytes) -> list[int] | None:
    """The positions of the quotes that open and close each string (open, close, open, ...); ``None`` for
    a body with too many strings for this path, or with a long run of backslashes before a quote."""
    if data.count(b'"') > _MAX_QUOTES:
        return None
    quotes, position = [], data.find(b'"')
    while position != -1:
        if len(quotes) % 2 == 0:
            quotes.append(position)
        else:
            backslashes = _backslashes_before(data, position)
            if backslashes is None:
                return None
            if backslashes % 2 == 0:  # NOTE: an odd number escapes the quote: the string goes on
                quotes.append(position)
        position = data.find(b'"', position + 1)
    return quotes if len(quotes) % 2 == 0 else None


def _backslashes_before(data: bytes, position: int) -> int | None:
    """How many backslashes come right before ``position``; ``None`` for more than ``_MAX_BACKSLASHES``."""
    window = data[max(0, position - _MAX_BACKSLASHES - 1) : position]
    run = len(window) - len(window.rstrip(b"\\"))
    return None if run > _MAX_BACKSLASHES else run


def _tensor_places(skeleton: Any) -> list[tuple[dict[str, Any], str]] | None:
    """``(object, key)`` of each placeholder, in the order of the spans; ``None`` if one is anywhere else
    than the value of ``instances``, of ``inputs`` or of a key of ``inputs``."""
    if not isinstance(skeleton, dict):
        return None
    places = [(skeleton, key) for key in ("instances", "inputs") if _is_placeholder(skeleton.get(key))]
    named = skeleton.get("inputs")
    if isinstance(named, dict):
        places += [(named, key) for key, value in named.items() if _is_placeholder(value)]
    places.sort(key=lambda place: int(place[0][place[1]].rpartition(" ")[2]))
    return places


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_PLACEHOLDER[:-2])


def _read_array(data: bytes, start: int, end: int) -> np.ndarray | None:
    """The array ``data[start:end]`` (``[`` to ``]``) holds, read block by block into one buffer; ``None``
    unless it is a non-empty dense tensor of numbers (or of bools).

    NOTE: a dense tensor of n values has exactly n - 1 commas, so its rows are counted before it is read.
    """
    array, filled = None, 0
    for block_start, block_end, alone in _blocks(data, start + 1, end - 1, _element_separator(data, start + 1)):
        if alone and block_end - block_start > BLOCK_BYTES:
            block = _read_element(data, block_start, block_end)
        else:
            values = _load_block(data[block_start:block_end])
            block = None if values is None else _natural_array(values)
        if block is None:
            return None
        if array is None:
            rows, rest = divmod(data.count(b",", start, end) + 1, block[0].size)
            if rest or len(block) > rows:
                return None
            if len(block) == rows:
                return block
            array = np.empty((rows, *block.shape[1:]), block.dtype)
        array = _placed(array, block, filled)
        if array is None:
            return None
        filled += len(block)
    return array if array is not None and filled == len(array) else None


def _read_named_rows(data: bytes, start: int, end: int) -> dict[str, np.ndarray] | None:
    """The rows of objects ``data[start:end]`` holds as one array per name, read block by block; ``None``
    unless every row has the same names, each a dense tensor of numbers (or of bools) of one shape.

    NOTE: each row is one object, so the rows are counted before they are read; an object inside a row
    (a ``{"b64": ...}`` value) makes the count wrong, and the body is declined.
    """
    rows, columns, filled = data.count(b"{", start, end), None, 0
    for block_start, block_end, _ in _blocks(data, start + 1, end - 1, _ROW_SEPARATOR):
        values = _load_block(data[block_start:block_end])
        if not values or any(type(row) is not dict or row.keys() != values[0].keys() for row in values):
            return None
        blocks = {name: _natural_array([row[name] for row in values]) for name in values[0]}
        if columns is None:
            columns = {
                name: np.empty((rows, *block.shape[1:]), block.dtype)
                for name, block in blocks.items()
                if block is not None
            }
        if blocks.keys() != columns.keys():
            return None
        for name, block in blocks.items():
            column = None if block is None else _placed(columns[name], block, filled)
            if column is None:
                return None
            columns[name] = column
        filled += len(values)
    return columns if columns and filled == rows else None


def _placed(array: np.ndarray, block: np.ndarray, filled: int) -> np.ndarray | None:
    """``array`` with ``block`` written from row ``filled`` on, in a wider dtype if the block needs one (ints
    then floats); ``None`` if the block does not fit (another row shape, more rows, bools with numbers)."""
    if (array.dtype.kind == "b") != (block.dtype.kind == "b"):
        return None
    if block.shape[1:] != array.shape[1:] or filled + len(block) > len(array):
        return None
    dtype = np.result_type(array.dtype, block.dtype)
    if dtype != array.dtype:
        wider = np.empty(array.shape, dtype)
        wider[:filled] = array[:filled]  # NOTE: the rows still to come are not values yet
        array = wider
    array[filled : filled + len(block)] = block
    return array


def _element_separator(data: bytes, start: int) -> re.Pattern[bytes]:
    """What ends an element of the array whose text starts at ``start`` (after its ``[``).

    NOTE: an element of rank r ends with r ``]``; a comma after r of them ends an element of a dense tensor.
    """
    rank = _OPENING.match(data, start).group().count(b"[")
    return re.compile(rb"," if not rank else rb"\]" + rb"\s*\]" * (rank - 1) + rb"\s*,")


def _blocks(data: bytes, start: int, end: int, separator: re.Pattern[bytes]) -> Iterator[tuple[int, int, bool]]:
    """``[start, end)`` cut at the commas ``separator`` ends with into spans of about ``BLOCK_BYTES``, each
    with whether it holds one element alone (one longer than a block is read as an array of its own).

    NOTE: a cut anywhere but between elements leaves a block that is not valid JSON, so it is declined.
    """
    while True:
        first = separator.search(data, start, end)
        alone = first is None or first.start() >= start + BLOCK_BYTES
        found = first if alone else separator.search(data, start + BLOCK_BYTES, end)
        if found is None:
            yield start, end, alone
            return
        yield start, found.end() - 1, alone
        start = found.end()


def _read_element(data: bytes, start: int, end: int) -> np.ndarray | None:
    """One element of an array, ``data[start:end]`` with the spaces around it, as a batch of one."""
    first, last = data.find(b"[", start, end), data.rfind(b"]", start, end)
    if first == -1 or data[start:first].strip() or data[last + 1 : end].strip():
        return None
    element = _read_array(data, first, last + 1)
    return None if element is None else element[np.newaxis]


def _load_block(text: bytes) -> list[Any] | None:
    """One block (elements of an array and the commas between them) as a list, TF Serving's NaN and
    Infinity tokens as floats; ``None`` for text that is not such a list."""
    non_finite = b"NaN" in text or b"Infinity" in text
    if non_finite:
        for token, mark in _NON_FINITE_MARKS:
            text = text.replace(token, mark)
    try:
        values = orjson.loads(b"[" + text + b"]")
    except orjson.JSONDecodeError:
        return None
    return _marks_as_floats(values) if non_finite else values


def _marks_as_floats(value: Any) -> Any:
    """``value`` with the marks of ``_NON_FINITE_MARKS`` turned into floats."""
    if isinstance(value, list):
        return [_marks_as_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: _marks_as_floats(item) for key, item in value.items()}
    return _NON_FINITE.get(value, value) if type(value) is str else value


def _natural_array(values: list[Any]) -> np.ndarray | None:
    """``values`` (a non-empty list) as an array: bools, floats in float64 (float32 where that holds them
    exactly), ints in the smallest dtype that holds them; ``None`` unless they are a dense tensor of one kind."""
    shape = dense_shape(values)
    leaves = dense_leaves(values, shape)
    if not values or leaves is None:
        return None
    dtype = _NATURAL_DTYPES.get(frozenset(map(type, leaves)))
    if dtype is None:
        return None
    try:
        array = np.array(leaves, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError):  # NOTE: an int beyond int64, or more dimensions than numpy has
        return None
    if dtype.kind == "i":
        low, high = array.min(), array.max()
        return array.astype(next(t for t in _INTS if np.iinfo(t).min <= low and high <= np.iinfo(t).max))
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            single = array.astype(np.float32)
        return single if np.array_equal(single, array, equal_nan=True) else array  # NOTE: short numbers lose nothing
    return array
