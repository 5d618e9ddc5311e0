"""The naive way people serve TensorFlow: a minimal Flask app around ``tf.saved_model.load``.

A peer for ``perf/bench.py``, written as a typical tutorial would: every model under ``$NAIVE_MODELS``
(``<dir>/<name>/<version>/``, highest version) is loaded at import, and ``POST /v1/models/<name>:predict``
takes TF Serving's row format (``{"instances": [...]}``) for its single input and answers
``{"predictions": [...]}`` from its single output. Run it under gunicorn with sync workers::

    NAIVE_MODELS=/path/to/models gunicorn -w 2 -b 127.0.0.1:8700 perf.peers.naive_app:app
"""

from __future__ import annotations

import os

import tensorflow as tf
from flask import Flask, jsonify, request

app = Flask(__name__)
models = {}
for name in sorted(os.listdir(os.environ["NAIVE_MODELS"])):
    base = os.path.join(os.environ["NAIVE_MODELS"], name)
    version = max(int(v) for v in os.listdir(base) if v.isdigit())
    model = tf.saved_model.load(os.path.join(base, str(version)))
    models[name] = (model, model.signatures["serving_default"])


@app.post("/v1/models/<name>:predict")
def predict(name: str):
    """Run the model's default signature on the posted instances."""
    _, sig = models[name]
    input_name = list(sig.structured_input_signature[1])[0]
    out = list(sig(**{input_name: tf.constant(request.get_json()["instances"], tf.float32)}).values())[0]
    return jsonify({"predictions": out.numpy().tolist()})
