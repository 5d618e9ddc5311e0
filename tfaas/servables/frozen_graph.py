"""TFaaS's TF1 models: a frozen ``GraphDef`` plus ``params.json`` naming its input and output nodes.

The version directory holds the ``.pb`` that ``params.json``'s ``model`` names (``tf_model.pb``), and
``params.json``'s ``input_node`` and ``output_node`` (``inputNode``/``outputNode`` in old files) name the
tensor fed and the tensor fetched. The servable offers that pair as one ``serving_default`` predict
signature, input alias ``inputs`` and output alias ``outputs``, so every route (TF Serving's REST API
as well as TFaaS's) can run it.

TensorFlow is imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import gc
import os
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from tfaas.core.servable_id import ServableId
from tfaas.errors import Internal, InvalidArgument, NotFound, Unavailable
from tfaas.servables.model_params import PARAMS_JSON, ModelParams, model_file, read_labels, read_params
from tfaas.servables.saved_model import (
    _client_message,
    _signature_def_map_json,
    _signature_infos,
    _SignatureRunner,
)
from tfaas.servables.servable import SignatureInfo
from tfaas.tf_serving import DEFAULT_SIGNATURE, PREDICT_METHOD_NAME

INPUT_ALIAS = "inputs"
OUTPUT_ALIAS = "outputs"


class FrozenGraphLoader:
    """Loads one TFaaS frozen-graph version directory into a ``FrozenGraphServable`` (the core ``Loader``)."""

    def __init__(self, servable_id: ServableId, path: str) -> None:
        self._id = servable_id
        self._path = path
        self._servable: FrozenGraphServable | None = None

    def load(self) -> FrozenGraphServable:
        """Read ``params.json``, import the graph, open its session and return the servable.

        Raises ``NotFound`` when ``params.json`` or the model file is missing, ``InvalidArgument`` when
        ``params.json`` is malformed, lacks a required key or names a node the graph does not have, and
        ``Internal`` when the model file is not a GraphDef TensorFlow can import.
        """
        params = read_params(self._path)
        if params is None:
            raise NotFound(f"No {PARAMS_JSON} in {self._path}: a TFaaS frozen graph needs one")
        _require(params, self._path)
        graph_path = model_file(self._path, params)
        if not os.path.isfile(graph_path):
            raise NotFound(f'{PARAMS_JSON} in {self._path} names model file "{params.model}", which is absent')
        graph = _import_graph(graph_path)
        input_tensor = _tensor(graph, params.input_node, "input_node", self._path)
        output_tensor = _tensor(graph, params.output_node, "output_node", self._path)
        self._servable = FrozenGraphServable(
            self._id,
            self._path,
            graph,
            input_tensor,
            output_tensor,
            params=params,
            labels=read_labels(self._path, params),
        )
        return self._servable

    def unload(self) -> None:
        """Close the session and drop the graph so their memory can be freed."""
        if self._servable is not None:
            self._servable.close()
            self._servable = None
        gc.collect()


class FrozenGraphServable:
    """One loaded frozen graph: a ``serving_default`` signature run through one long-lived session.

    NOTE: one ``tf.compat.v1.Session`` for the version, not one per request as TFaaS opens: a session's
    first ``run`` of a fetch prunes, partitions and optimises the graph and creates its kernels, which the
    session then caches, so a new session per request pays that on every request. ``Session.run`` is
    thread-safe, so request threads share the one session.

    Inputs are checked as a TF1 session's Python ``run`` checks them (dtype of the same kind, rank and
    fixed dims of the placeholder), raising ``InvalidArgument``.
    """

    def __init__(
        self,
        servable_id: ServableId,
        path: str,
        graph: Any,
        input_tensor: Any,
        output_tensor: Any,
        *,
        params: ModelParams,
        labels: list[str],
    ) -> None:
        import tensorflow as tf

        self.id = servable_id
        self.path = path
        self.params: ModelParams | None = params
        self.labels: list[str] = labels
        meta_graph = _meta_graph(input_tensor, output_tensor)
        self._signatures = MappingProxyType(_signature_infos(meta_graph))
        self._signature_def_map = _signature_def_map_json(meta_graph)
        self._session: Any = tf.compat.v1.Session(graph=graph)
        self._input = input_tensor
        self._output = output_tensor
        info = self._signatures[DEFAULT_SIGNATURE]
        self._runners = {
            DEFAULT_SIGNATURE: _SignatureRunner.create(info, self._run_session, lambda array: array, check_shapes=True)
        }
        self._client_errors: tuple[type[BaseException], ...] = (tf.errors.InvalidArgumentError, TypeError, ValueError)

    @property
    def signatures(self) -> Mapping[str, SignatureInfo]:
        """The one signature, ``serving_default``: ``inputs`` is ``input_node``, ``outputs`` is ``output_node``."""
        return self._signatures

    def signature_def_map_json(self) -> dict[str, Any]:
        """The ``metadata.signature_def`` object of TF Serving's metadata call, as if the graph were a SavedModel.

        Computed once at load time; the same dict is returned to every caller, who must not modify it.
        """
        return self._signature_def_map

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feed ``inputs["inputs"]`` to the input node, fetch the output node as ``{"outputs": array}``.

        Raises ``InvalidArgument`` for another signature, missing or extra inputs, an input of another
        dtype kind or shape, and TensorFlow errors the input caused; ``Unavailable`` after ``close``.
        """
        runner = self._runner(signature_name)
        try:
            return runner.function(**runner.feeds(inputs))
        except self._client_errors as error:
            raise InvalidArgument(_client_message(error)) from error

    def submit(self, signature_name: str, inputs: Mapping[str, np.ndarray], on_done: Any = None) -> None:
        """Never queued: this servable does not batch (``BatchingServable`` wraps it where it does)."""
        return None

    def check_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs`` as ``run`` would feed them, or ``run``'s client errors."""
        return self._runner(signature_name).checked(inputs)

    def _runner(self, signature_name: str) -> _SignatureRunner:
        runner = self._runners.get(signature_name)
        if runner is None:
            if self._session is None:
                raise Unavailable(f"Servable {self.id} has been unloaded")
            raise InvalidArgument(f'Serving signature name: "{signature_name}" not found in signature def')
        return runner

    def close(self) -> None:
        """Close the session; ``run`` raises ``Unavailable`` afterwards."""
        session, self._session = self._session, None
        self._runners = {}
        if session is not None:
            session.close()

    def _run_session(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise Unavailable(f"Servable {self.id} has been unloaded")
        value = session.run(self._output, feed_dict={self._input: feeds[INPUT_ALIAS]})
        return {OUTPUT_ALIAS: np.asarray(value)}


def _require(params: ModelParams, path: str) -> None:
    """Reject ``params`` without the keys a frozen graph needs, naming both spellings of each."""
    missing = []
    if not params.model:
        missing.append('"model"')
    if not params.input_node:
        missing.append('"input_node" (or "inputNode")')
    if not params.output_node:
        missing.append('"output_node" (or "outputNode")')
    if missing:
        raise InvalidArgument(f"{PARAMS_JSON} in {path} lacks {', '.join(missing)}, which a TFaaS frozen graph needs")


def _import_graph(graph_path: str) -> Any:
    """A fresh ``tf.Graph`` holding the binary GraphDef at ``graph_path``, node names unprefixed."""
    import tensorflow as tf
    from google.protobuf import message

    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(graph_path, "rb") as file:
            graph_def.ParseFromString(file.read())
    except (OSError, message.DecodeError) as error:
        raise Internal(f"Frozen graph {graph_path} could not be read: {error}") from error
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
    except Exception as error:
        raise Internal(f"Frozen graph {graph_path} could not be imported: {_client_message(error)}") from error
    return graph


def _tensor(graph: Any, name: str, key: str, path: str) -> Any:
    """The tensor ``name`` names in ``graph``: ``op`` (its first output) or ``op:N``."""
    tensor_name = name if ":" in name else f"{name}:0"
    try:
        return graph.get_tensor_by_name(tensor_name)
    except (KeyError, ValueError) as error:
        raise InvalidArgument(
            f'{PARAMS_JSON} in {path}: {key} "{name}" is not a tensor of the graph: {_first_line(error)}'
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error.args[0] if error.args else error)
    return text.splitlines()[0] if text else type(error).__name__


def _meta_graph(input_tensor: Any, output_tensor: Any) -> Any:
    """A MetaGraphDef holding only the ``serving_default`` SignatureDef of the two tensors."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    signature = meta_graph.signature_def[DEFAULT_SIGNATURE]
    signature.method_name = PREDICT_METHOD_NAME
    for infos, alias, tensor in (
        (signature.inputs, INPUT_ALIAS, input_tensor),
        (signature.outputs, OUTPUT_ALIAS, output_tensor),
    ):
        info = infos[alias]
        info.name = tensor.name
        info.dtype = tensor.dtype.as_datatype_enum
        info.tensor_shape.CopyFrom(tensor.shape.as_proto())
    return meta_graph
