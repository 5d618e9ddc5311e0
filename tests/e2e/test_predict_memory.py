"""A large predict body costs a few times its size in the worker's memory, and bodies past the limit are refused.

Real servers with one worker serve ``double`` (``y = 2 * x``, x float [None, 42]), whose answer is as
large as its request. The worker's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) is read
before a large request and after it: its growth must stay within ``MEMORY_FACTOR`` times the body.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from tests.e2e.server import ServerProcess
from tfaas.codecs.json_tensor import decode_predict_request
from tfaas.errors import InvalidArgument
from tfaas.servables.servable import SignatureInfo, TensorInfo

pytestmark = pytest.mark.e2e

BODY_BYTES = 20_000_000
MEMORY_FACTOR = 4
FEATURES = 42
BODY_LIMIT = 30_000_000
X = TensorInfo("x", "x:0", "DT_FLOAT", None)


def _write_double(path: Path) -> None:
    """A TF2 SavedModel computing ``y = 2 * x`` for x float [None, 42]: the answer is as big as the request."""
    import tensorflow as tf

    class Double(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": 2.0 * x}

    module = Double()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("double") / "double"
    _write_double(base / "1")
    return base


def start(start_server, model: Path) -> ServerProcess:
    server = start_server(
        "--model_name", "double", "--model_base_path", str(model), "--max_request_body_bytes", str(BODY_LIMIT)
    )
    server.wait_available("double", 1)
    return server


@pytest.fixture(scope="module")
def server(start_server, model: Path) -> ServerProcess:
    return start(start_server, model)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def body_of(key: str, size: int) -> tuple[bytes, np.ndarray]:
    """A predict body of about ``size`` bytes: rows of 42 floats as a client's ``json.dumps`` writes them."""
    rows = size // (FEATURES * 20)
    values = np.random.default_rng(7).normal(size=(rows, FEATURES))
    return orjson.dumps({key: values.tolist()}), values.astype(np.float32)


@pytest.mark.parametrize("key", ["instances", "inputs"], ids=["row", "columnar"])
def test_a_20_mb_body_costs_at_most_4_times_its_size(start_server, model: Path, key: str):
    """Each format on a fresh server, whose peak so far is a small request's."""
    server = start(start_server, model)
    small = server.post("/v1/models/double:predict", json={"instances": [[1.0] * FEATURES]})
    assert small.status_code == 200, small.text
    (pid,) = server.booted_workers()
    before = peak_rss(pid)
    body, values = body_of(key, BODY_BYTES)
    started = time.perf_counter()
    response = server.post("/v1/models/double:predict", data=body, headers={"Content-Type": "application/json"})
    seconds = time.perf_counter() - started
    growth = peak_rss(pid) - before
    server.stop()
    assert response.status_code == 200, response.text[:500]
    answer = np.asarray(response.json()["predictions" if key == "instances" else "outputs"], dtype=np.float32)
    np.testing.assert_array_equal(answer, 2 * values)
    print(f"{key}: body {len(body)} B, peak RSS growth {growth} B = {growth / len(body):.2f}x, {seconds:.2f} s")
    assert growth <= MEMORY_FACTOR * len(body)


def test_a_large_body_the_fast_path_declines_gets_the_general_paths_answer(server: ServerProcess):
    """Past LARGE_BODY_BYTES, a body that is not a dense tensor of numbers is answered as a small one is."""
    rows = [[0.5] * FEATURES] * 30_000
    ragged = orjson.dumps({"instances": [*rows, [1.0]]})
    with pytest.raises(InvalidArgument) as expected:
        decode_predict_request(orjson.loads(ragged), SignatureInfo("s", "m", {"x": X}, {}))
    response = server.post("/v1/models/double:predict", data=ragged)
    assert (response.status_code, response.json()) == (400, {"error": expected.value.message})
    non_finite = orjson.dumps({"instances": rows}).replace(b"0.5]]", b"NaN]]")
    response = server.post("/v1/models/double:predict", data=non_finite)
    assert response.status_code == 200, response.text[:500]
    assert response.content.endswith(b"NaN]]}") and len(response.json()["predictions"]) == len(rows)


@pytest.mark.parametrize("path", ["/v1/models/double:predict", "/v1/models/double:classify"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_v1_body_past_the_limit_is_413(server: ServerProcess, chunked: bool, path: str):
    body = b"[" * (BODY_LIMIT + 1)
    data = iter([body[:1000], body[1000:]]) if chunked else body  # NOTE: requests sends an iterator chunked
    response = server.post(path, data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": RequestEntityTooLarge.description}


@pytest.mark.parametrize("path", ["/v1/models/double:predict", "/v1/models/double:classify", "/json"])
def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_sent(server: ServerProcess, path: str):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_LIMIT + 1}\r\n\r\n".encode()
        )
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413 "), head
    assert "content-type: application/json" in head.lower()


def test_a_chunked_body_reaches_the_flask_routes(server: ServerProcess):
    """Werkzeug reads a body without Content-Length as empty unless the server says it ends the stream."""
    body = orjson.dumps({"keys": [f"x{i}" for i in range(FEATURES)], "values": [1.0] * FEATURES, "model": "double"})
    response = server.post("/json", data=iter([body[:10], body[10:]]), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json() == [2.0] * FEATURES


def test_a_chunked_body_past_the_limit_is_read_only_to_the_limit_and_refused_by_the_flask_app(server: ServerProcess):
    """Werkzeug stops reading a stream at the limit: what it read is then refused as malformed (a 400, not
    the 413 a declared length gets), and the worker holds no more than the limit."""
    body = b'{"examples": [' + b"[" * (BODY_LIMIT + 1)
    response = server.post("/json", data=iter([body[:1000], body[1000:]]), headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert response.headers["Content-Type"] == "application/json" and "error" in response.json()
    assert server.get("/healthz").status_code == 200
