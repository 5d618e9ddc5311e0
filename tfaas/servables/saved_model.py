"""SavedModel servables: read a version's SignatureDefs and run them through TensorFlow.

TensorFlow is imported inside functions only, so importing this module stays cheap. Each signature is
served by the concrete function ``tf.saved_model.load`` restores for it, built once at load time.

Old TF1 exports (TF Serving's own test models among them) hold things that ``tf.saved_model.load``
cannot import although TF Serving serves them fine: tensor infos without a shape, Placeholders whose
empty shape meant "unknown" in old graph versions, and reference-typed outputs (``DT_FLOAT_REF``).
Those SavedModels are loaded from a patched copy of their ``saved_model.pb`` (see
``_eager_loadable_copy``); the signatures the server reports stay the original ones, and so does the
SignatureDef JSON of the metadata call (``signature_def_map_json``).
"""

from __future__ import annotations

import gc
import os
import re
import tempfile
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfaas.core.servable_id import ServableId
from tfaas.errors import Internal, InvalidArgument, NotFound, Unavailable
from tfaas.servables.eas_warmup import run_eas_warmup
from tfaas.servables.first_call import warm_first_calls
from tfaas.servables.model_params import ModelParams, read_labels, read_params
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.servables.warmup import WarmupOptions, run_warmup
from tfaas.servables.warmup import current_options as warmup_options
from tfaas.tf_serving import without_op_suffix

SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
DEFAULT_TAGS: tuple[str, ...] = ("serve",)

_REF_OFFSET = 100  # NOTE: TF numbers every DT_X_REF as DT_X + 100 (types.proto).
_LEGACY_PLACEHOLDER_VERSION = 21  # NOTE: up to this GraphDef version, an empty Placeholder shape is "unknown".
_STACK_LINE = re.compile(
    r"Graph execution error:|Detected at node .* defined at \(most recent call last\):"
    r"|<stack traces unavailable>|\s+File .*|\s*$"
)


class SavedModelLoader:
    """Loads one SavedModel version directory into a ``SavedModelServable`` (the core ``Loader``)."""

    def __init__(
        self,
        servable_id: ServableId,
        path: str,
        tags: Sequence[str] = DEFAULT_TAGS,
        warmup: WarmupOptions | None = None,
    ) -> None:
        self._id = servable_id
        self._path = path
        self._tags = tuple(tags)
        self._warmup = warmup  # NOTE: None: the process-wide options (tfaas.servables.warmup.configure)
        self._servable: SavedModelServable | None = None

    def load(self) -> SavedModelServable:
        """Read the signatures, restore the model with TensorFlow and return the servable.

        Raises ``NotFound`` when there is no SavedModel file or no meta graph with the tags,
        ``InvalidArgument`` when the directory's TFaaS ``params.json`` is malformed, and ``Internal`` when
        the file is unreadable or TensorFlow fails to restore the model. Then replays the version's
        warmup requests, if it has any, and its EAS warm-up request; their failure fails the load (see
        ``tfaas.servables.warmup`` and ``tfaas.servables.eas_warmup``).
        """
        params = read_params(self._path)
        labels = read_labels(self._path, params)
        saved_model = _read_saved_model(self._path)
        meta_graph = _find_meta_graph(saved_model, self._tags, self._path)
        signatures = _signature_infos(meta_graph)
        # NOTE: from the original meta graph; _restore may load a patched copy of it.
        signature_def_map = _signature_def_map_json(meta_graph)
        root = _restore(self._path, saved_model, self._tags)
        try:
            functions = {key: root.signatures[key] for key in signatures}
        except KeyError as error:
            raise Internal(f"SavedModel at {self._path}: TensorFlow restored no signature {error}") from error
        self._servable = SavedModelServable(
            self._id,
            self._path,
            signatures,
            functions,
            root,
            check_shapes=_is_tf2(meta_graph),
            signature_def_map=signature_def_map,
            params=params,
            labels=labels,
        )
        try:
            # NOTE: inside the load, so the version becomes AVAILABLE only once it is warm.
            options = self._warmup or warmup_options()
            warmed = run_warmup(self._servable, self._id.name, self._path, options)
            if not warmed + run_eas_warmup(self._servable, self._path, options) and options.first_call:
                warm_first_calls(self._servable, functions, self._id.name, self._id.version)
        except BaseException:
            self.unload()
            raise
        return self._servable

    def unload(self) -> None:
        """Drop every reference to the TensorFlow objects so their memory can be freed."""
        if self._servable is not None:
            self._servable.close()
            self._servable = None
        gc.collect()  # NOTE: restored functions and variables form reference cycles.


class SavedModelServable:
    """One loaded SavedModel version: its signatures, and a thread-safe ``run`` over them.

    With ``check_shapes``, ``run`` rejects inputs whose rank or fixed dims differ from the signature's,
    as calling a TF2 function does. Without it (TF1 graphs) any shape is fed, as a TF1 session (and so
    TF Serving) feeds it: TF Serving's canonical example gives ``half_plus_two``'s ``x``, declared
    ``[-1,1]``, a ``[3]`` tensor and answers ``[3.0, 3.5, 4.0]``.
    """

    def __init__(
        self,
        servable_id: ServableId,
        path: str,
        signatures: Mapping[str, SignatureInfo],
        functions: Mapping[str, Callable[..., Mapping[str, Any]]],
        root: object,
        *,
        check_shapes: bool,
        signature_def_map: dict[str, Any],
        params: ModelParams | None = None,
        labels: Sequence[str] = (),
    ) -> None:
        import tensorflow as tf

        self.id = servable_id
        self.path = path
        self.params = params  # NOTE: the version directory's TFaaS params.json, if it has one
        self.labels = list(labels)  # NOTE: the labels file params.json names, one label per line
        self._signatures = MappingProxyType(dict(signatures))
        self._signature_def_map = signature_def_map
        self._runners = {
            key: _SignatureRunner.create(info, functions[key], tf.convert_to_tensor, check_shapes)
            for key, info in signatures.items()
        }
        self._root: object | None = root  # NOTE: owns the variables the functions capture; keep it alive.
        self._client_errors: tuple[type[BaseException], ...] = (
            tf.errors.InvalidArgumentError,
            TypeError,  # NOTE: TF raises these two when it cannot bind or convert an input
            ValueError,
        )

    @property
    def signatures(self) -> Mapping[str, SignatureInfo]:
        """Every signature of the version by key, as declared in ``saved_model.pb``."""
        return self._signatures

    def signature_def_map_json(self) -> dict[str, Any]:
        """The ``metadata.signature_def`` object of TF Serving's metadata call for this version.

        Computed once at load time from the original ``saved_model.pb``; the same dict is returned to every
        caller, who must not modify it.
        """
        return self._signature_def_map

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one signature on numpy inputs keyed by alias; return every output keyed by alias.

        Raises ``InvalidArgument`` for an unknown signature, missing or extra inputs, inputs that cannot
        be converted to the signature's dtypes, and TensorFlow errors the inputs caused.
        """
        runner = self._runner(signature_name)
        try:
            outputs = runner.function(**runner.feeds(inputs))
        except self._client_errors as error:
            raise InvalidArgument(_client_message(error)) from error
        # NOTE: np.asarray, not .numpy(): that gives numpy scalars (or bytes) for rank-0 outputs.
        return {alias: np.asarray(tensor) for alias, tensor in outputs.items()}

    def submit(self, signature_name: str, inputs: Mapping[str, np.ndarray], on_done: Any = None) -> None:
        """Never queued: this servable does not batch (``BatchingServable`` wraps it where it does)."""
        return None

    def check_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs`` as ``run`` would feed them (cast to the signature's dtypes), or ``run``'s client errors."""
        return self._runner(signature_name).checked(inputs)

    def _runner(self, signature_name: str) -> _SignatureRunner:
        runner = self._runners.get(signature_name)
        if runner is None:
            raise self._missing_signature(signature_name)
        return runner

    def close(self) -> None:
        """Release the TensorFlow objects; ``run`` raises ``Unavailable`` afterwards."""
        self._runners = {}
        self._root = None

    def _missing_signature(self, signature_name: str) -> Exception:
        if self._root is None:
            return Unavailable(f"Servable {self.id} has been unloaded")
        return InvalidArgument(f'Serving signature name: "{signature_name}" not found in signature def')


@dataclass(frozen=True)
class _SignatureRunner:
    """What ``run`` needs for one signature, computed once at load time."""

    info: SignatureInfo
    function: Callable[..., Mapping[str, Any]]
    to_tensor: Callable[[np.ndarray], Any]
    aliases: frozenset[str]
    dtype_names: Mapping[str, str]
    dtypes: Mapping[str, np.dtype]
    shapes: Mapping[str, tuple[int | None, ...] | None] | None  # None: shapes are not checked

    @staticmethod
    def create(
        info: SignatureInfo,
        function: Callable[..., Mapping[str, Any]],
        to_tensor: Callable[[np.ndarray], Any],
        check_shapes: bool,
    ) -> _SignatureRunner:
        """Precompute the input aliases, fed dtypes and (when checked) shapes of ``info``."""
        dtype_names = _fed_dtype_names(info, function)
        return _SignatureRunner(
            info=info,
            function=flat_caller(function),
            to_tensor=to_tensor,
            aliases=frozenset(info.inputs),
            dtype_names=dtype_names,
            dtypes={alias: _numpy_dtype(name) for alias, name in dtype_names.items()},
            shapes={alias: tensor.shape for alias, tensor in info.inputs.items()} if check_shapes else None,
        )

    def feeds(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Check the aliases, then convert every input to a tensor of its signature dtype.

        NOTE: tensors, not arrays: restored signature functions take a tensor of any shape (as TF
        Serving's session does), but refuse an array whose shape differs from the declared one. The
        shape check, where there is one, is ours.
        """
        return {alias: self.to_tensor(value) for alias, value in self.checked(inputs).items()}

    def checked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the aliases, then every input's dtype (cast where TF would) and, where checked, shape."""
        if inputs.keys() != self.aliases:
            raise InvalidArgument(_alias_mismatch(inputs.keys(), self.aliases))
        return {alias: self._convert(alias, value) for alias, value in inputs.items()}

    def _convert(self, alias: str, value: np.ndarray) -> np.ndarray:
        array = np.asarray(value)
        dtype = self.dtypes[alias]
        if array.dtype != dtype:
            array = _cast(alias, array, dtype, self.dtype_names[alias])
        if self.shapes is not None:
            _check_shape(alias, array.shape, self.shapes[alias])
        return array


def flat_caller(function: Any) -> Callable[..., Mapping[str, Any]]:
    """A faster way to call a restored signature function with one tensor per keyword, where there is one.

    Calling a ``ConcreteFunction`` binds the keywords to its ``FunctionType`` and casts every tensor
    to its spec on each call; that is about a third of the call on a small model (~45 of ~150 µs for
    the 42-input network). The runner has already checked and converted the inputs, so the feeds go
    straight to the function's flat call, in the order of its parameters, with its captured tensors.
    NOTE: ``_call_flat`` is TensorFlow's own internal entry (stable since TF 2.0, used by its
    ``__call__``); a function without it, or with a parameter that is not one tensor, is called as is.
    """
    call_flat = getattr(function, "_call_flat", None)
    function_type = getattr(function, "function_type", None)
    if call_flat is None or function_type is None:
        return function
    names = list(function_type.parameters)
    specs = [parameter.type_constraint for parameter in function_type.parameters.values()]
    if not all(type(spec).__name__ == "TensorSpec" for spec in specs):
        return function
    captured = function.captured_inputs

    def call(**feeds: Any) -> Mapping[str, Any]:
        return call_flat([feeds[name] for name in names], captured)

    return call


def _fed_dtype_names(info: SignatureInfo, function: Any) -> dict[str, str]:
    """The DataType name each input of ``info`` is fed as: the restored function's, else the declared one.

    NOTE: they differ where a TensorInfo misstates its tensor: ``saved_model_half_plus_three``'s regress
    signature declares ``tf_example:0`` DT_FLOAT although that Placeholder is DT_STRING. TF Serving feeds
    tensors by name, so the Placeholder's dtype is the one that works (serialized tf.Examples there).
    """
    from tensorflow.core.framework import types_pb2

    specs = getattr(function, "structured_input_signature", ((), {}))[1]
    names = {alias: tensor.dtype for alias, tensor in info.inputs.items()}
    for alias, spec in specs.items():
        if alias in names and hasattr(spec, "dtype"):
            names[alias] = types_pb2.DataType.Name(spec.dtype.as_datatype_enum)
    return names


def _numpy_dtype(dtype_name: str) -> np.dtype:
    """The numpy dtype TensorFlow uses for ``dtype_name`` (``object`` for strings)."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    return np.dtype(tf.dtypes.as_dtype(types_pb2.DataType.Value(dtype_name)).base_dtype.as_numpy_dtype)


def _cast(alias: str, array: np.ndarray, dtype: np.dtype, dtype_name: str) -> np.ndarray:
    """Convert ``array`` to ``dtype`` when that keeps its kind (int to float, float64 to float32...)."""
    if dtype.kind == "O":
        if array.dtype.kind in "OSU":
            return array  # NOTE: TensorFlow turns bytes and str arrays into DT_STRING itself.
    elif np.can_cast(array.dtype, dtype, casting="same_kind"):
        return array.astype(dtype)
    raise InvalidArgument(f"Input {alias} has dtype {array.dtype} but the signature expects {dtype_name}")


def _check_shape(alias: str, shape: tuple[int, ...], expected: tuple[int | None, ...] | None) -> None:
    """Reject ``shape`` when its rank or one of its fixed dims differs from ``expected``."""
    if expected is None:
        return
    if len(shape) != len(expected) or any(want is not None and want != got for want, got in zip(expected, shape)):
        raise InvalidArgument(
            f"Input {alias} has shape {_shape_text(shape)} but the signature expects {_shape_text(expected)}"
        )


def _shape_text(shape: Sequence[int | None]) -> str:
    """A shape written the way TF Serving writes one: ``[-1,1]``."""
    return "[" + ",".join(str(-1 if dim is None else dim) for dim in shape) + "]"


def _alias_mismatch(sent: Any, required: frozenset[str]) -> str:
    """TF Serving's message for inputs that do not match the signature's aliases."""
    extra, missing = sorted(set(sent) - required), sorted(required - set(sent))
    return (
        f"input size does not match signature: {len(sent)}!={len(required)} "
        f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(required))}}}). "
        f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
    )


def _client_message(error: BaseException) -> str:
    """TensorFlow's message without the Python stack eager functions put before kernel errors."""
    message = getattr(error, "message", None) or str(error)
    lines = message.splitlines()
    # NOTE: "Graph execution error:", then "Detected at node X defined at ...:" and where X was defined
    # (or "<stack traces unavailable>"); the kernel's own message follows.
    while lines and _STACK_LINE.match(lines[0]):
        lines.pop(0)
    return without_op_suffix("\n".join(lines)) or message


def read_signatures(path: str, tags: Sequence[str] = DEFAULT_TAGS) -> dict[str, SignatureInfo]:
    """The signatures of the SavedModel at ``path`` without loading it (no graph, no variables)."""
    return _signature_infos(_find_meta_graph(_read_saved_model(path), tuple(tags), path))


def _read_saved_model(path: str) -> Any:
    """Parse ``saved_model.pb`` (or ``saved_model.pbtxt``) in ``path`` into a ``SavedModel`` proto."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    binary, text = os.path.join(path, SAVED_MODEL_PB), os.path.join(path, SAVED_MODEL_PBTXT)
    try:
        if os.path.isfile(binary):
            with open(binary, "rb") as file:
                saved_model.ParseFromString(file.read())
        elif os.path.isfile(text):
            with open(text, encoding="utf-8") as file:
                text_format.Parse(file.read(), saved_model)
        else:
            raise NotFound(f"No {SAVED_MODEL_PB} or {SAVED_MODEL_PBTXT} in {path}")
    except (OSError, UnicodeDecodeError, message.DecodeError, text_format.ParseError) as error:
        raise Internal(f"SavedModel at {path} could not be read: {error}") from error
    if not saved_model.meta_graphs:
        raise Internal(f"SavedModel at {path} could not be read: it holds no MetaGraphDef")
    return saved_model


def _find_meta_graph(saved_model: Any, tags: Sequence[str], path: str) -> Any:
    """The MetaGraphDef whose tag set is exactly ``tags`` (as TensorFlow's loader matches them)."""
    wanted = set(tags)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    available = ", ".join(_tags_text(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs)
    raise NotFound(
        f"Could not find meta graph def matching supplied tags: {_tags_text(tags)} in SavedModel at {path}. "
        f"Available tag sets: [{available}]"
    )


def _tags_text(tags: Sequence[str]) -> str:
    return "{ " + " ".join(sorted(tags)) + " }"


def _signature_infos(meta_graph: Any) -> dict[str, SignatureInfo]:
    """Every public SignatureDef of ``meta_graph`` by key (``__saved_model_init_op`` and the like skipped)."""
    return {
        key: SignatureInfo(
            name=key,
            method_name=signature.method_name,
            inputs=_tensor_infos(signature.inputs),
            outputs=_tensor_infos(signature.outputs),
        )
        for key, signature in sorted(meta_graph.signature_def.items())
        if not key.startswith("__")
    }


def _signature_def_map_json(meta_graph: Any) -> dict[str, Any]:
    """``meta_graph``'s SignatureDefs as TF Serving's metadata call prints its ``SignatureDefMap``.

    That is protobuf JSON with the original field names and every field without presence printed
    (``"defaults": {}``, ``"unknown_rank": false``; int64 as strings), ``__saved_model_init_op`` and the
    like included. NOTE: TF Serving lists the keys in its C++ map's hash order; they are sorted here.
    """
    from google.protobuf import json_format

    signatures = {}
    for key in sorted(meta_graph.signature_def):
        signature = json_format.MessageToDict(
            meta_graph.signature_def[key], preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        # NOTE: protobuf prints map entries in a per-process hash order; sorted, the bytes are stable.
        for field in ("inputs", "outputs"):
            signature[field] = dict(sorted(signature[field].items()))
        signatures[key] = signature
    return {"signature_def": signatures}


def _is_tf2(meta_graph: Any) -> bool:
    """Whether ``meta_graph`` was written by ``tf.saved_model.save`` (TF1 exports have no object graph)."""
    return meta_graph.HasField("object_graph_def")


def _tensor_infos(proto_map: Any) -> dict[str, TensorInfo]:
    from tensorflow.core.framework import types_pb2

    return {
        alias: TensorInfo(alias, proto.name, types_pb2.DataType.Name(proto.dtype), _shape(proto))
        for alias, proto in sorted(proto_map.items())
    }


def _shape(proto: Any) -> tuple[int | None, ...] | None:
    """The declared dims of a TensorInfo proto, ``None`` for an unknown dim or an unknown (or absent) shape."""
    if not proto.HasField("tensor_shape") or proto.tensor_shape.unknown_rank:
        return None
    return tuple(dim.size if dim.size >= 0 else None for dim in proto.tensor_shape.dim)


def _restore(path: str, saved_model: Any, tags: tuple[str, ...]) -> Any:
    """``tf.saved_model.load`` the model, from a patched copy when it is a TF1 export that needs one."""
    import tensorflow as tf

    patched = _eager_loadable_copy(saved_model)
    try:
        if patched is None:
            return tf.saved_model.load(path, tags=list(tags))
        return _restore_patched(path, patched, tags)
    except Exception as error:
        raise Internal(f"SavedModel at {path} could not be loaded: {_client_message(error)}") from error


def _restore_patched(path: str, patched: Any, tags: tuple[str, ...]) -> Any:
    """Load ``patched`` as the ``saved_model.pb`` of ``path``, through a temporary directory.

    The directory links every other entry (variables, assets) to the original, so nothing is copied;
    TensorFlow reads variables and runs asset initializers during the load, so it can go afterwards.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tfaas-saved-model-") as staging:
        for entry in os.listdir(path):
            if entry not in (SAVED_MODEL_PB, SAVED_MODEL_PBTXT):
                os.symlink(os.path.abspath(os.path.join(path, entry)), os.path.join(staging, entry))
        with open(os.path.join(staging, SAVED_MODEL_PB), "wb") as file:
            file.write(patched.SerializeToString())
        return tf.saved_model.load(staging, tags=list(tags))


def _eager_loadable_copy(saved_model: Any) -> Any | None:
    """A copy of a TF1 ``saved_model`` that ``tf.saved_model.load`` can import, or None if it needs none."""
    if all(_is_tf2(meta_graph) for meta_graph in saved_model.meta_graphs):
        return None
    patched = type(saved_model)()
    patched.CopyFrom(saved_model)
    changed = False
    for meta_graph in patched.meta_graphs:
        if not _is_tf2(meta_graph):
            changed = _fill_missing_shapes(meta_graph) | changed
            changed = _unknown_legacy_placeholder_shapes(meta_graph) | changed
            changed = _dereference_ref_outputs(meta_graph) | changed
    return patched if changed else None


def _fill_missing_shapes(meta_graph: Any) -> bool:
    """Mark tensor infos without a shape as unknown-rank; TensorFlow would read them as scalars.

    ``tf.saved_model.load`` sets each signature tensor's shape from its TensorInfo, so an absent shape
    (``saved_model_half_plus_three``) fails the import with "Shapes must be equal rank".
    """
    changed = False
    for signature in meta_graph.signature_def.values():
        for info in (*signature.inputs.values(), *signature.outputs.values()):
            if info.WhichOneof("encoding") == "name" and not info.HasField("tensor_shape"):
                info.tensor_shape.unknown_rank = True
                changed = True
    return changed


def _unknown_legacy_placeholder_shapes(meta_graph: Any) -> bool:
    """Spell out "unknown shape" on Placeholders of old graphs that wrote it as an empty shape.

    TensorFlow's C++ shape inference still honours the old meaning for those graph versions, but the
    Python import behind ``tf.saved_model.load`` takes the empty shape as a scalar and then fails
    (``saved_model_half_plus_three``: "Shape must be rank 1 but is rank 0" at its ParseExample).
    """
    if meta_graph.graph_def.versions.producer > _LEGACY_PLACEHOLDER_VERSION:
        return False
    changed = False
    for node in meta_graph.graph_def.node:
        if node.op != "Placeholder" or "shape" not in node.attr:
            continue
        shape = node.attr["shape"].shape
        if not shape.dim and not shape.unknown_rank:
            shape.unknown_rank = True
            changed = True
    return changed


def _dereference_ref_outputs(meta_graph: Any) -> bool:
    """Route every reference-typed signature output through a new ``Identity`` node that reads it.

    A function cannot return a ``DT_FLOAT_REF`` (``saved_model_counter``'s ``AssignAdd`` outputs), and
    the ``Identity`` yields the same value once the op it reads has run, as a TF1 session fetch would.
    """
    taken = {node.name for node in meta_graph.graph_def.node}
    changed = False
    for _, signature in sorted(meta_graph.signature_def.items()):
        for _, info in sorted(signature.outputs.items()):
            if info.WhichOneof("encoding") != "name" or info.dtype <= _REF_OFFSET:
                continue
            name = _unused_name("tfaas_dereference", taken)
            node = meta_graph.graph_def.node.add(name=name, op="Identity", input=[_node_input(info.name)])
            node.attr["T"].type = info.dtype - _REF_OFFSET
            info.name, info.dtype = f"{name}:0", info.dtype - _REF_OFFSET
            changed = True
    return changed


def _unused_name(prefix: str, taken: set[str]) -> str:
    """``prefix_N`` with the smallest N not in ``taken``, which it joins."""
    index = 0
    while f"{prefix}_{index}" in taken:
        index += 1
    taken.add(f"{prefix}_{index}")
    return f"{prefix}_{index}"


def _node_input(tensor_name: str) -> str:
    """A NodeDef input naming tensor ``op:N`` (``op`` alone for output 0)."""
    op, _, index = tensor_name.partition(":")
    return op if index in ("", "0") else tensor_name
