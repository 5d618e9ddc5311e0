"""The inference service's requests and results: numpy arrays and plain values, no wire format.

A front's codec builds a request from its wire format and encodes the result back; the service never
sees JSON, protobuf or HTTP. Model specs are :class:`~tfaas.server_core.ModelSpec` (name, and at most
one of a version or a label); what answered is a :class:`ServedSpec` (the version resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfaas.core.states import ServableState
from tfaas.servables.model_params import ModelParams
from tfaas.servables.servable import SignatureInfo
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE

InputDecoder = Callable[[SignatureInfo], Mapping[str, np.ndarray]]
"""Decodes a request's inputs once the signature that will run them is known (a JSON codec needs its
dtypes); a codec whose wire format carries its own dtypes (``TensorProto``) passes arrays instead."""

Inputs = Mapping[str, np.ndarray] | InputDecoder

VersionFilesHook = Callable[[ModelParams | None, Sequence[str]], None]
"""Told the TFaaS files of the version a request runs on: its ``params.json`` (None without one) and the
labels of the labels file it names, both read at load time."""


@dataclass(frozen=True)
class ServedSpec:
    """The model spec of the version that answered, as TF Serving echoes it in responses."""

    name: str
    version: int
    signature_name: str = ""


@dataclass
class PredictRequest:
    """Run ``signature_name`` on ``inputs`` (by alias); ``output_filter``, when not empty, names the only
    outputs wanted (TF Serving's ``PredictRequest.output_filter``). ``on_version``, when set, is told the
    serving version's TFaaS files before the inputs are decoded (TFaaS's image calls decode with its
    channel count, and name the classes of their answer with its labels)."""

    spec: ModelSpec
    inputs: Inputs
    signature_name: str = DEFAULT_SIGNATURE
    output_filter: Sequence[str] = ()
    on_version: VersionFilesHook | None = None


@dataclass
class PredictResult:
    spec: ServedSpec
    outputs: dict[str, np.ndarray]


@dataclass
class ExamplesRequest:
    """A classify or regress call: serialized ``tf.Example``\\ s (a context's bytes already prepended to each)."""

    spec: ModelSpec
    examples: list[bytes]
    signature_name: str = DEFAULT_SIGNATURE


@dataclass
class ClassifyResult:
    """Per example and class: a label (``classes``, DT_STRING) and a score (``scores``, float32); either is
    ``None`` where the signature has no such output. Both are ``[examples, classes]``."""

    spec: ServedSpec
    classes: np.ndarray | None
    scores: np.ndarray | None


@dataclass
class RegressResult:
    """One float per example."""

    spec: ServedSpec
    values: np.ndarray


@dataclass(frozen=True)
class InferenceTask:
    """One task of a multi-inference call: a signature of the model, and its method (TF Serving's
    ``tensorflow/serving/classify`` or ``tensorflow/serving/regress``)."""

    spec: ModelSpec
    signature_name: str
    method_name: str


@dataclass
class MultiInferenceRequest:
    tasks: Sequence[InferenceTask]
    examples: list[bytes]


@dataclass
class MultiInferenceResult:
    results: list[ClassifyResult | RegressResult]


@dataclass
class ModelMetadata:
    """A version's SignatureDefs, as the protobuf JSON of a ``SignatureDefMap``."""

    spec: ServedSpec
    signature_def_map: dict[str, Any]


@dataclass
class SignatureMetadata:
    """One signature of the version a model spec resolved to, and the versions its model serves (highest first)."""

    spec: ServedSpec
    signature: SignatureInfo
    versions: Sequence[int]


@dataclass
class ModelListing:
    """One model of ``list_models`` (a served one) or of ``model_index`` (``unloaded``: withheld from serving)."""

    name: str
    version_labels: Mapping[str, int]
    states: list[ServableState] = field(default_factory=list)
    unloaded: bool = False
