"""TFaaS's inference calls as the inference service's requests, and their answers: ``/json`` and ``/proto``
rows, ``/image`` uploads, the first output row, top labels.

Every call runs the model's ``serving_default`` signature, so it serves SavedModels and TFaaS frozen
graphs (whose one signature that is) alike. NOTE: TFaaS itself feeds SavedModels through graph op names,
hard-coded ones for rows (``serving_default_inputs_input`` -> ``StatefulPartitionedCall``) and
``params.json``'s ``input_name``/``output_name`` for images; for the Keras models it was written for,
the signature is the same computation, and it works for any other SavedModel too.

TensorFlow is imported inside ``decode_image`` only.
"""

from __future__ import annotations

import numbers
import re
import reprlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tfaas.errors import InvalidArgument
from tfaas.inference.types import PredictRequest, PredictResult
from tfaas.servables.model_params import ModelParams
from tfaas.servables.servable import SignatureInfo
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE, without_op_suffix

DEFAULT_IMAGE_CHANNELS = 3
IMAGE_CHANNELS = (1, 3, 4)

_GIF_MAGIC = (b"GIF87a", b"GIF89a")
_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")


@dataclass
class VersionFiles:
    """The TFaaS files of the version a call ran on, as the service tells them (``PredictRequest.on_version``)."""

    params: ModelParams | None = None
    labels: Sequence[str] = field(default_factory=list)

    def __call__(self, params: ModelParams | None, labels: Sequence[str]) -> None:
        self.params, self.labels = params, labels


def row_request(
    spec: ModelSpec, values: Sequence[float] | np.ndarray, version: VersionFiles | None = None
) -> PredictRequest:
    """TFaaS's ``/json`` and ``/proto``: ``[values]`` (float32, shape ``[1, N]``) for the single input of
    ``serving_default``; ``version``, if given, is told the files of the version that runs it.

    Raises ``InvalidArgument`` when the model has no ``serving_default`` or one with several inputs, when
    a value is not a number, and when the row does not fit the input (the servable's own check).
    """

    def decode(signature: SignatureInfo) -> dict[str, np.ndarray]:
        return {_single_input(signature): _row(values)}

    return PredictRequest(spec, decode, DEFAULT_SIGNATURE, on_version=version)


def image_request(spec: ModelSpec, image_bytes: bytes, version: VersionFiles) -> PredictRequest:
    """TFaaS's ``/image``: the image's pixels as float32 ``[1, H, W, C]`` for the single input of
    ``serving_default``, decoded with the channel count of the version that runs it (``params.json``'s
    ``img_channels``), which ``version`` is told, labels included. See :func:`decode_image`."""

    def decode(signature: SignatureInfo) -> dict[str, np.ndarray]:
        alias = _single_input(signature)
        channels = version.params.img_channels if version.params else None
        return {alias: decode_image(image_bytes, channels)[np.newaxis]}

    return PredictRequest(spec, decode, DEFAULT_SIGNATURE, on_version=version)


def first_row(result: PredictResult) -> np.ndarray:
    """The answer of a TFaaS call: row 0 of the only (else the first by alias) output, as 1-D float32."""
    aliases = sorted(result.outputs)
    if not aliases:
        raise InvalidArgument(f'The model\'s "{DEFAULT_SIGNATURE}" signature has no output')
    alias = aliases[0]
    value = np.asarray(result.outputs[alias])
    if value.dtype.kind not in "biuf":
        raise InvalidArgument(f'Output "{alias}" has dtype {value.dtype}, not a number TFaaS can return')
    row = value[0] if value.ndim >= 2 else value
    return np.asarray(row, dtype=np.float32).reshape(-1)


def _row(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``[values]`` as float32 ``[1, N]``; only numbers (ints, floats; no booleans, strings or None)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in "iuf":
            raise InvalidArgument(f"Row values must be a flat list of numbers, got {values.dtype} {list(values.shape)}")
        return values.astype(np.float32)[np.newaxis]
    values = list(values)
    for index, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
            raise InvalidArgument(f"Row values must be numbers: value {index} is {reprlib.repr(value)}")
    return np.asarray([values], dtype=np.float32).reshape(1, len(values))


def decode_image(image_bytes: bytes, channels: int | None) -> np.ndarray:
    """The pixels of an encoded image as float32 ``[H, W, C]`` holding 0..255.

    The format (PNG, JPEG, GIF, BMP, WebP) is told by content, not by file name as TFaaS does; an
    animated GIF gives its first frame. ``channels`` is ``params.json``'s ``img_channels`` (1, 3 or 4;
    None or 0 means 3). Pixels go in as raw 0..255 values, neither resized nor normalised (as in TFaaS).
    Raises ``InvalidArgument("Invalid image: ...")`` for bytes that are not an image, and
    ``InvalidArgument`` for another channel count.
    """
    import tensorflow as tf

    count = channels or DEFAULT_IMAGE_CHANNELS
    if count not in IMAGE_CHANNELS:
        raise InvalidArgument(f"Image channels must be 1, 3 or 4, not {count}")
    # NOTE: TensorFlow's GIF decoder gives 3 channels only; grey and RGBA are made from its RGB.
    is_gif = bytes(image_bytes[:6]) in _GIF_MAGIC
    try:
        image = tf.io.decode_image(
            bytes(image_bytes), channels=3 if is_gif else count, dtype=tf.uint8, expand_animations=False
        )
        if is_gif and count == 1:
            image = tf.image.rgb_to_grayscale(image)
        elif is_gif and count == 4:
            image = tf.concat([image, tf.fill([*image.shape[:2], 1], tf.constant(255, tf.uint8))], axis=-1)
    except tf.errors.InvalidArgumentError as error:
        raise InvalidArgument(f"Invalid image: {_tf_message(error)}") from error
    return image.numpy().astype(np.float32)


def top_labels(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[str], k: int = 5
) -> list[tuple[str, float]]:
    """TFaaS's ``/image`` labelling: labels paired with probabilities by index, most probable first.

    Only indices both have are paired (TFaaS pairs ``i < len(labels)``); the top ``min(k, len(labels))``
    pairs are returned (fewer when there are fewer probabilities, where TFaaS fails). Ties keep index order.
    """
    values = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    pairs = [(label, float(value)) for label, value in zip(labels, values.tolist())]
    pairs.sort(key=lambda pair: pair[1], reverse=True)
    return pairs[: max(0, min(k, len(labels)))]


def _single_input(signature: SignatureInfo) -> str:
    """The alias of the one input of ``signature``; TFaaS's calls carry exactly one tensor."""
    if len(signature.inputs) != 1:
        raise InvalidArgument(
            f'The model\'s "{DEFAULT_SIGNATURE}" signature takes {len(signature.inputs)} inputs '
            f"({', '.join(sorted(signature.inputs)) or 'none'}); TFaaS's calls feed exactly one"
        )
    return next(iter(signature.inputs))


def _tf_message(error: BaseException) -> str:
    """TensorFlow's message without the ``{{function_node ...}}`` prefix and ``[Op:...]`` suffix of eager ops."""
    message = getattr(error, "message", None) or str(error)
    return without_op_suffix(_FUNCTION_NODE.sub("", message)) or message
