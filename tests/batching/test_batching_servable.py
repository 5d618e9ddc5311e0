"""BatchingServable and its scheduler, with a fake servable whose runs can be held and inspected."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Mapping

import numpy as np
import pytest

from tfaas.batching.batching_servable import BatchingServable
from tfaas.batching.parameters import BatchingParameters
from tfaas.core.servable_id import ServableId
from tfaas.errors import InvalidArgument, Unavailable
from tfaas.servables.servable import SignatureInfo, TensorInfo

SIGNATURE = "serving_default"
ID = ServableId("fake", 1)


class FakeServable:
    """``y = x + 1`` on float32 ``x`` of shape [None, 2]; records each run's rows and thread.

    ``hold()`` makes the next run wait until ``release()``, so tests can queue requests behind it.
    A negative value makes a run fail with ``InvalidArgument``, as a TF op fails on a bad value.
    ``scalar_output`` adds an output with no batch dimension, which cannot be split.
    """

    params = None
    labels: list[str] = []

    def __init__(self, scalar_output: bool = False) -> None:
        self.runs: list[tuple[int, str]] = []
        self.scalar_output = scalar_output
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Event()
        info = SignatureInfo(
            SIGNATURE, "tensorflow/serving/predict", {"x": TensorInfo("x", "x:0", "DT_FLOAT", (None, 2))}
        )
        self.signatures = {SIGNATURE: info}

    def hold(self) -> None:
        self._gate.clear()
        self.entered.clear()

    def release(self) -> None:
        self._gate.set()

    def signature_def_map_json(self) -> dict[str, Any]:
        return {}

    def check_inputs(self, signature_name: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if inputs.keys() != {"x"}:
            raise InvalidArgument("expected input x")
        return {"x": np.asarray(inputs["x"], dtype=np.float32)}

    def run(self, signature_name: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        x = self.check_inputs(signature_name, inputs)["x"]
        self.runs.append((len(x), threading.current_thread().name))
        self.entered.set()
        self._gate.wait(10)
        if (x < 0).any():
            raise InvalidArgument("negative input")
        outputs = {"y": x + 1}
        if self.scalar_output:
            outputs["total"] = np.float32(x.sum())
        return outputs


def batching(fake: FakeServable, **parameters: Any) -> BatchingServable:
    defaults: dict[str, Any] = {"num_batch_threads": 1}
    return BatchingServable(fake, ID, BatchingParameters(**{**defaults, **parameters}))


def rows(*values: float) -> np.ndarray:
    return np.array([[v, v] for v in values], dtype=np.float32)


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=16) as executor:
        yield executor


def submit_behind_a_held_run(servable: BatchingServable, fake: FakeServable, pool, inputs: list) -> list[Future]:
    """Start one request that holds the batch thread, then queue ``inputs`` behind it (not yet run)."""
    fake.hold()
    first = pool.submit(servable.run, SIGNATURE, {"x": rows(100.0)})
    assert fake.entered.wait(5)
    futures = [pool.submit(servable.run, SIGNATURE, {"x": x}) for x in inputs]
    _wait_until_queued(servable, len(inputs))
    return [first, *futures]


def _wait_until_queued(servable: BatchingServable, tasks: int) -> None:
    deadline = time.monotonic() + 5
    while servable._scheduler.queued_tasks() < tasks:
        assert time.monotonic() < deadline, "requests were not queued"
        time.sleep(0.005)


def test_concurrent_requests_share_one_run_and_each_gets_its_own_rows_in_order(pool) -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=32)
    inputs = [rows(float(i), float(i) + 0.5) for i in range(6)]
    futures = submit_behind_a_held_run(servable, fake, pool, inputs)
    fake.release()
    answers = [f.result(5)["y"] for f in futures]
    assert [size for size, _ in fake.runs] == [1, 12], "the six queued requests ran as one batch of 12 rows"
    for x, answer in zip([rows(100.0), *inputs], answers):
        np.testing.assert_array_equal(answer, x + 1)
    servable.close()


def test_a_submitted_task_calls_back_from_the_batch_thread_and_then_waits_for_nothing() -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=4)
    called: list[tuple[str, bool]] = []
    back = threading.Event()

    def on_done(task) -> None:
        called.append((threading.current_thread().name, task.done))
        back.set()

    task = servable.submit(SIGNATURE, {"x": rows(1.0, 2.0)}, on_done)
    assert task is not None and back.wait(5)
    assert called == [(fake.runs[0][1], True)] and called[0][0].startswith("batch-fake-1")
    np.testing.assert_array_equal(task.wait()["y"], rows(2.0, 3.0))
    assert servable.submit(SIGNATURE, {"x": rows(*range(5))}) is None, "more than a full batch: the caller runs it"
    servable.close()


def test_batches_hold_at_most_max_batch_size_rows(pool) -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=4)
    futures = submit_behind_a_held_run(servable, fake, pool, [rows(1, 2), rows(3, 4), rows(5)])
    fake.release()
    for future in futures:
        future.result(5)
    assert [size for size, _ in fake.runs] == [1, 4, 1]
    servable.close()


def test_a_full_queue_answers_unavailable_and_loses_nothing_queued(pool) -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=1, max_enqueued_batches=1)
    first, queued = submit_behind_a_held_run(servable, fake, pool, [rows(7)])
    with pytest.raises(Unavailable, match="queue to which this task was submitted is full"):
        servable.run(SIGNATURE, {"x": rows(8)})
    fake.release()
    np.testing.assert_array_equal(queued.result(5)["y"], rows(8))
    assert first.result(5)["y"][0][0] == 101
    servable.close()


def test_a_lone_request_runs_once_the_timeout_has_passed() -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=8, batch_timeout_micros=200_000)
    started = time.monotonic()
    answer = servable.run(SIGNATURE, {"x": rows(1)})
    assert time.monotonic() - started >= 0.2, "it waited for company first"
    np.testing.assert_array_equal(answer["y"], rows(2))
    assert [size for size, _ in fake.runs] == [1]
    servable.close()


def test_batches_are_padded_to_an_allowed_size_and_the_padding_dropped() -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=8, allowed_batch_sizes=(4, 8))
    answer = servable.run(SIGNATURE, {"x": rows(3)})
    np.testing.assert_array_equal(answer["y"], rows(4))
    assert [size for size, _ in fake.runs] == [4]
    servable.close()


def test_requests_larger_than_a_full_batch_run_on_their_own_thread() -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=4)
    answer = servable.run(SIGNATURE, {"x": rows(1, 2, 3, 4, 5)})
    np.testing.assert_array_equal(answer["y"], rows(2, 3, 4, 5, 6))
    assert fake.runs == [(5, threading.current_thread().name)]
    servable.close()


def test_a_request_that_does_not_fit_the_signature_fails_before_it_is_queued() -> None:
    fake = FakeServable()
    servable = batching(fake)
    with pytest.raises(InvalidArgument, match="expected input x"):
        servable.run(SIGNATURE, {"z": rows(1)})
    assert fake.runs == []
    servable.close()


def test_a_bad_value_fails_only_its_own_request(pool) -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=16)
    first, good, bad = submit_behind_a_held_run(servable, fake, pool, [rows(1), rows(-1)])
    fake.release()
    np.testing.assert_array_equal(good.result(5)["y"], rows(2))
    with pytest.raises(InvalidArgument, match="negative input"):
        bad.result(5)
    first.result(5)
    servable.close()


def test_a_signature_whose_outputs_cannot_be_split_is_answered_request_by_request(pool) -> None:
    fake = FakeServable(scalar_output=True)
    servable = batching(fake, max_batch_size=16)
    first, *queued = submit_behind_a_held_run(servable, fake, pool, [rows(1), rows(2)])
    fake.release()
    assert first.result(5)["total"] == 200  # NOTE: a batch of one request needs no split
    assert [(f.result(5)["y"][0][0], f.result(5)["total"]) for f in queued] == [(2, 2), (3, 4)]
    later = servable.run(SIGNATURE, {"x": rows(5)})
    assert later["total"] == 10
    assert [size for size, _ in fake.runs] == [1, 2, 1, 1, 1], "the batch of two, then each alone, then direct"
    assert fake.runs[-1][1] == threading.current_thread().name, "no longer batched"
    servable.close()


def test_close_runs_every_queued_request_then_refuses_new_ones(pool) -> None:
    fake = FakeServable()
    servable = batching(fake, max_batch_size=1, max_enqueued_batches=10)
    futures = submit_behind_a_held_run(servable, fake, pool, [rows(1), rows(2), rows(3)])
    closing = pool.submit(servable.close)
    fake.release()
    closing.result(5)
    assert [f.result(5)["y"][0][0] for f in futures] == [101, 2, 3, 4]
    with pytest.raises(Unavailable):
        servable.run(SIGNATURE, {"x": rows(1)})
