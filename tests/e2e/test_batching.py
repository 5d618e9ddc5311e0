"""Dynamic batching end to end: a real server batching real SavedModels over real HTTP.

One server serves the same dense network twice, batched and not, so answers can be compared byte for
byte; ``half_plus`` padded to allowed batch sizes from a version's own ``batching_params.pbtxt``; and
the sleepy model behind a one-batch queue, to fill it.

NOTE on exactness: TensorFlow's CPU kernels compute a one-row matmul by another path than a
multi-row one, so a one-row request can differ in its last bit between a one-row call and a batch
(TF Serving's batching has the same property). The comparison therefore sends two-row requests: any
multi-row call gives the same bits for a row, and the batcher itself changes no value.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.slow_models import write_sleepy_model

pytestmark = pytest.mark.e2e

DENSE = "dense42"


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, half_plus) -> ServerProcess:
    from tfaas.examples import build_examples

    root = tmp_path_factory.mktemp("batching")
    build_examples(str(root / "examples"))
    dense = root / "examples" / DENSE
    shutil.copytree(half_plus(2.0), root / "padded" / "1")
    (root / "padded" / "1" / "batching_params.pbtxt").write_text(
        "max_batch_size { value: 8 } batch_timeout_micros { value: 50000 } allowed_batch_sizes: 4 allowed_batch_sizes: 8"
    )
    write_sleepy_model(root / "sleepy" / "1")
    config = root / "tfaas.yaml"
    config.write_text(
        f"""
enable_per_model_batching_parameters: true
models:
  - {{name: batched, base_path: {dense}, batching: {{max_batch_size: 64, batch_timeout_micros: 20000}}}}
  - {{name: plain, base_path: {dense}, batching: false}}
  - {{name: padded, base_path: {root / "padded"}, batching: true}}
  - name: sleepy
    base_path: {root / "sleepy"}
    batching: {{max_batch_size: 1, max_enqueued_batches: 1, num_batch_threads: 1}}
"""
    )
    server = start_server("--config", str(config))
    for model in ("batched", "plain", "padded", "sleepy"):
        server.wait_available(model, 1)
    return server


def predict(server: ServerProcess, model: str, instances: list) -> tuple[int, bytes]:
    response = server.post(f"/v1/models/{model}:predict", json={"instances": instances})
    return response.status_code, response.content


def test_concurrent_batched_answers_equal_unbatched_ones_exactly_and_in_order(server: ServerProcess) -> None:
    rng = np.random.default_rng(7)
    requests = [rng.random((2, 42), dtype=np.float32).tolist() for _ in range(48)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        batched = list(pool.map(lambda rows: predict(server, "batched", rows), requests))
    plain = [predict(server, "plain", rows) for rows in requests]
    assert all(status == 200 for status, _ in batched + plain)
    assert [body for _, body in batched] == [body for _, body in plain], "same bytes, each request its own rows"
    sizes = batch_sizes(server, "batched")
    assert sizes["count"] < len(requests) and sizes["sum"] / sizes["count"] > 2, "requests did share batches"


def test_a_large_body_is_answered_as_its_rows_are_in_small_requests(server: ServerProcess) -> None:
    """Bodies over the front's LOOP_REQUEST_BYTES take the pool-thread lane; the answers must not differ."""
    from tfaas.fronts import LOOP_REQUEST_BYTES

    rows = np.random.default_rng(11).random((400, 42), dtype=np.float32).tolist()
    assert len(json.dumps({"instances": rows})) > LOOP_REQUEST_BYTES
    for model in ("batched", "plain"):
        status, body = predict(server, model, rows)
        assert status == 200
        pairs = [predict(server, model, rows[i : i + 2]) for i in range(0, len(rows), 2)]
        assert [row for _, pair in pairs for row in json.loads(pair)["predictions"]] == json.loads(body)["predictions"]


def test_a_lone_request_is_padded_flushed_after_the_timeout_and_answered(server: ServerProcess) -> None:
    status, body = predict(server, "padded", [[1.0], [3.0], [5.0]])
    assert status == 200
    assert json.loads(body) == {"predictions": [[2.5], [3.5], [4.5]]}
    assert padding_rows(server, "padded") >= 1, "three rows ran as a batch of four (batching_params.pbtxt)"


def test_a_full_queue_answers_503_and_the_others_are_served(server: ServerProcess) -> None:
    # NOTE: each request is a batch of its own (max_batch_size 1), one runs at a time and one more may
    # wait; of three sent together while each sleeps a second, at least one finds the queue full.
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda x: server.post("/v1/models/sleepy:predict", json={"instances": [x]}), [1.0] * 3))
    statuses = sorted(response.status_code for response in answers)
    assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}
    for response in answers:
        if response.status_code == 503:
            assert response.json() == {"error": "The batch scheduling queue to which this task was submitted is full"}
        else:
            assert response.json() == {"predictions": [1.0]}


def batch_sizes(server: ServerProcess, model: str) -> dict[str, float]:
    text = server.get("/metrics").text
    return {
        kind: float(re.search(rf'^tfaas_batch_size_{kind}{{model="{model}"}} (\S+)$', text, re.M).group(1))
        for kind in ("sum", "count")
    }


def padding_rows(server: ServerProcess, model: str) -> float:
    match = re.search(rf'^tfaas_batch_padding_rows_total{{model="{model}"}} (\S+)$', server.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0
