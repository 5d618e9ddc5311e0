#!/usr/bin/env bash
# Create the virtual environment Simple TensorFlow Serving (STS) 0.8.2 runs in for perf/bench.py.
#
#   bash perf/peers/setup_sts.sh            # creates perf/.venv-sts (git-ignored); idempotent
#
# What STS 0.8.2 needs here (it was released in 2020 and pins nothing):
# - TensorFlow: the system's TensorFlow 2.21 on Python 3.11. The venv is made with
#   --system-site-packages so it reuses that TensorFlow (about 1.5 GB) instead of a second copy;
#   packages installed in the venv take precedence over the system's, so the pins below win.
# - flask==2.2.5 and werkzeug==2.2.3: STS uses Flask's `before_first_request`, removed in Flask 2.3
#   (the system has Flask 3.x, which the venv's pins shadow).
# - STS's other requirements: the system's tensorflow, numpy, protobuf, requests, flask-cors and jinja2
#   serve; pip adds what the system lacks (seen: pandas, pillow, configparser, and uWSGI, which it
#   compiles in about 30 s although STS's own command does not use it).
# tfaas is installed system-wide and requires flask>=3, so pip warns about a conflict: harmless, as
# nothing in this venv imports tfaas's server.
# It cannot serve TF2 `tf.saved_model.save` exports (it answers 500), so perf/bench.py exports the
# same weights in TF1 format for it. Its command runs Flask's single-threaded development server.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${STS_VENV:-$here/.venv-sts}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv --system-site-packages "$venv"
fi
"$venv/bin/pip" install --quiet "simple_tensorflow_serving==0.8.2" "flask==2.2.5" "werkzeug==2.2.3"
"$venv/bin/python" - <<'PY'
import flask, importlib.metadata as md, tensorflow as tf
print("STS", md.version("simple_tensorflow_serving"), "flask", md.version("flask"),
      "werkzeug", md.version("werkzeug"), "tensorflow", tf.__version__)
PY
echo "STS command: $venv/bin/simple_tensorflow_serving"
