"""TF Serving's ``Input`` message (``tensorflow_serving.apis.input_pb2``) to serialized tf.Examples.

The classify, regress and multi-inference requests carry their examples in one, over gRPC and in warmup
records alike. A leaf: it imports nothing of tfaas but its errors, so the servables' warmup can use it.
"""

from __future__ import annotations

from typing import Any

from tfaas.errors import InvalidArgument


def examples(request_input: Any) -> list[bytes]:
    """An ``Input``'s examples, serialized; with a context, its bytes precede each example's (as the REST
    classify does, so an example's own feature wins). ``InvalidArgument`` when it holds none."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise InvalidArgument("Input is empty.")
    return serialized
