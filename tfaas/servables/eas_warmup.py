"""PAI-EAS's model warm-up: replay a version's EAS warm-up request while it loads, before it is AVAILABLE.

EAS warms a service with a request file named by ``warm_up_data_path``, a ``.bin`` that its SDKs write as
one serialized ``PredictRequest`` (``open("warm_up.bin", "wb").write(request.to_string())``). Here that file
goes into the version itself, beside TF Serving's warmup file: ``<version>/assets.extra/warm_up.bin``. Its
request runs against the loaded servable as TF Serving's warmup records do (``tfaas.servables.warmup``),
``num_request_iterations_for_warmup`` times (EAS sends each request file five times); its answer is
ignored. A missing file is fine. A file that is not a ``PredictRequest``, or whose request fails (an
input the codec refuses, an unknown signature or output alias, a model error), fails the load with a
message naming the file, so the version that was serving keeps serving.

The arrays are decoded by the EAS codec (:func:`tfaas.codecs.eas_proto.decode_inputs`), as requests are.
"""

from __future__ import annotations

import logging
import os
import time

from tfaas.codecs import eas_proto
from tfaas.errors import InvalidArgument, TfaasError
from tfaas.servables.servable import Servable
from tfaas.servables.warmup import WarmupOptions
from tfaas.tf_serving import DEFAULT_SIGNATURE

log = logging.getLogger("tfaas.warmup")

EAS_WARMUP_FILE = os.path.join("assets.extra", "warm_up.bin")


def run_eas_warmup(servable: Servable, version_path: str, options: WarmupOptions) -> int:
    """Replay the EAS warm-up request of ``version_path`` against ``servable``; return the number of requests
    replayed (0 without a file, else 1). ``InvalidArgument`` naming the file when it fails."""
    path = os.path.join(version_path, EAS_WARMUP_FILE)
    if not os.path.isfile(path):
        return 0
    started = time.monotonic()
    with open(path, "rb") as file:
        data = file.read()
    try:
        message = eas_proto.parse_request(data)
        signature_name = message.signature_name or DEFAULT_SIGNATURE
        inputs = eas_proto.decode_inputs(message)
        for _ in range(max(1, options.iterations)):
            outputs = servable.run(signature_name, inputs)
        unknown = [alias for alias in message.output_filter if alias not in outputs]
        if unknown:
            raise InvalidArgument(f"output_filter names {', '.join(unknown)}, not outputs of {signature_name}")
    except TfaasError as error:
        raise InvalidArgument(f"EAS warm-up request {path} failed: {error.message}") from error
    except Exception as error:  # NOTE: a TensorFlow error the servable does not take for the client's
        raise InvalidArgument(f"EAS warm-up request {path} failed: {type(error).__name__}: {error}") from error
    log.info("Replayed the EAS warm-up request %s in %.3f s", path, time.monotonic() - started)
    return 1
