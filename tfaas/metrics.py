"""Prometheus metrics: what they are, how they are recorded, and how they add up across gunicorn workers.

Two naming schemes, side by side:

- ``tfaas_*``, in Prometheus's conventions (base units: seconds; counters end in ``_total``), covering
  every API and the model lifecycle (version states, load latency and failures, warmup).
- TF Serving's names, where TF Serving has one, so dashboards built for TF Serving keep working:
  ``:tensorflow:serving:request_count``, ``:tensorflow:serving:request_latency`` (µs, TF Serving's
  buckets), ``:tensorflow:serving:model_warmup_latency`` and ``:tensorflow:serving:model_warmup_records_read``.
  prometheus_client accepts the colons (they are legal in Prometheus metric names), but it writes a
  counter's samples as ``<name>_total``; ``render`` drops that suffix from the TF Serving names only,
  so they read exactly as TF Serving writes them.

Multi-process mode (gunicorn): each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
and a scrape, answered by any worker, sums the files of every worker (dead ones included, so counters
never go back when a worker is replaced). :func:`multiprocess_dir` sets that directory up in the master
before any worker starts; :func:`mark_worker_dead` is the master's ``child_exit`` hook.

The per-version state gauge uses ``livesum``: each worker sets 1 for the state its copy of a version is
in, so the scraped value is *the number of live workers* whose copy is in that state (with 2 workers,
``state="AVAILABLE"`` 2 means both serve it; 1 and ``LOADING`` 1 means one is still loading). ``livemax``
would say "some worker" and lose that count, ``liveall`` would add a ``pid`` label per worker (series that
change with every worker restart); ``live*`` because a dead worker's copy is gone: its gauge files are
removed when it exits.

NOTE: prometheus_client decides at import time whether it runs in multi-process mode, so this module
imports it only inside functions: gunicorn's master imports this module, sets the directory, and only
then may anything import prometheus_client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, MutableMapping

from tfaas.core.states import EventBus, ManagerState, ServableState
from tfaas.request_tally import Observation, RequestTally

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from tfaas.core.servable_id import ServableId

log = logging.getLogger("tfaas.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LEGACY_MULTIPROC_ENV = "prometheus_multiproc_dir"  # NOTE: prometheus_client still honours the old spelling.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENTRYPOINT = "REST"

REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(11))
"""1, 2, 4, ... 1024 rows."""
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TF_SERVING_MICROS_BUCKETS = tuple(10 * 1.8**i for i in range(33))
"""TF Serving's latency buckets: ``Exponential(10, 1.8, 33)``, in microseconds (10 µs to ~20 minutes)."""

_HTTP_TO_CODE = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DB_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")
_TF_COUNTER_TOTAL = re.compile(rb"^(# (?:HELP|TYPE) )?(:tensorflow:[A-Za-z0-9_:]*?)_total(?=[ {])", re.MULTILINE)


def status_code_name(http_status: int) -> str:
    """TF Serving's error-code name for an HTTP status, as its REST layer maps codes to statuses.

    NOTE: 400 is also FAILED_PRECONDITION in TF Serving; from the status alone it reads INVALID_ARGUMENT.
    """
    if 200 <= http_status < 300:
        return "OK"
    return _HTTP_TO_CODE.get(http_status, "UNKNOWN")


# ---- multi-process set-up (gunicorn's master) ----------------------------------------------------


def multiprocess_dir_in_use(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The multi-process directory prometheus_client uses in this process, or None (single process)."""
    environ = os.environ if environ is None else environ
    return environ.get(MULTIPROC_ENV) or environ.get(_LEGACY_MULTIPROC_ENV) or None


@contextlib.contextmanager
def multiprocess_dir(environ: MutableMapping[str, str] | None = None) -> Iterator[str]:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` for the workers about to be forked, and tidy up afterwards.

    The user's directory, when set, is created if missing and emptied of metric files left by an earlier
    run (stale files would add old counts to the new server's); it is left in place at the end. Otherwise
    a private temporary directory is made, and removed when the block ends. Call this before anything
    imports prometheus_client in this process.
    """
    environ = os.environ if environ is None else environ
    given = multiprocess_dir_in_use(environ)
    path = given or tempfile.mkdtemp(prefix="tfaas-prometheus-")
    os.makedirs(path, exist_ok=True)
    removed = 0
    for name in os.listdir(path):
        if _DB_FILE.fullmatch(name):
            os.remove(os.path.join(path, name))
            removed += 1
    if removed:
        log.info("Removed %d metric files of an earlier run from %s", removed, path)
    environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)
            environ.pop(MULTIPROC_ENV, None)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's ``child_exit`` hook, in the master).

    Its counters and histograms stay: they still count in the totals.
    """
    if multiprocess_dir_in_use() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


# ---- the metrics ---------------------------------------------------------------------------------


class Metrics:
    """Every metric tfaas exports, registered in ``registry`` (a fresh one in tests).

    With ``registry=None`` they go to prometheus_client's default registry, and ``render`` reads every
    worker's files when the process runs in multi-process mode.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        self._registry = registry
        self._multiprocess = registry is None and multiprocess_dir_in_use() is not None
        r = REGISTRY if registry is None else registry
        self.requests = Counter(
            "tfaas_requests",
            "Requests to the /v1 API by model, served version, API and HTTP status code.",
            ["model", "version", "api", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "tfaas_request_duration_seconds",
            "Wall time of successful /v1 requests, from routing to the response body, in seconds.",
            ["model", "api"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.version_state = Gauge(
            "tfaas_model_version_state",
            "Workers whose copy of the version is in the state (1 per worker; summed over live workers).",
            ["model", "version", "state"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.server_version_state = Gauge(
            "tfaas_server_model_version_state",
            "The server's state of the version (1 in its current state), as status and readiness report it: one"
            " decision for every worker.",
            ["model", "version", "state"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.load_seconds = Histogram(
            "tfaas_model_load_duration_seconds",
            "Time from LOADING to AVAILABLE of successful version loads (warmup included), in seconds.",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.load_failures = Counter(
            "tfaas_model_load_failures", "Version loads that failed (END with an error).", ["model"], registry=r
        )
        self.warmup_records = Counter(
            "tfaas_model_warmup_records",
            "Warmup records replayed while loading versions, by outcome of the warmup (OK or an error code).",
            ["model", "status"],
            registry=r,
        )
        self.warmup_seconds = Histogram(
            "tfaas_model_warmup_duration_seconds",
            "Wall time of warmups, by outcome (OK or an error code), in seconds.",
            ["model", "status"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.request_stage_seconds = Histogram(
            "tfaas_request_stage_seconds",
            "Where the time of successful /v1 requests goes: parse (JSON to arrays), queue (waiting for a batch),"
            " run (the model) and encode (arrays to JSON), in seconds.",
            ["model", "api", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "tfaas_batch_size",
            "Rows in each batch the batcher ran, padding included.",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_padding_rows = Counter(
            "tfaas_batch_padding_rows", "Rows added to batches to reach an allowed batch size.", ["model"], registry=r
        )
        # TF Serving's names (TFSERVING.md section 8), with its labels and units.
        self.tf_request_count = Counter(
            ":tensorflow:serving:request_count", "The total number of requests.", ["model_name", "status"], registry=r
        )
        self.tf_request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=TF_SERVING_MICROS_BUCKETS,
            registry=r,
        )
        self.tf_warmup_latency = Histogram(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.",
            ["model_path", "status"],
            buckets=TF_SERVING_MICROS_BUCKETS,
            registry=r,
        )
        self.tf_warmup_records = Counter(
            ":tensorflow:serving:model_warmup_records_read",
            "Total number of warmup records read during model warmup.",
            ["model_path", "status"],
            registry=r,
        )
        self._lock = threading.Lock()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._states: dict[tuple[str, int], ManagerState] = {}
        self._loading_since: dict[tuple[str, int], float] = {}
        self._server_states: dict[tuple[str, int], ManagerState] = {}
        self.tally = RequestTally(self)
        """Where a server's requests are counted (see :mod:`tfaas.request_tally`)."""

    # ---- recording ------------------------------------------------------------------------------

    def observe_request(
        self,
        *,
        model: str,
        version: str,
        api: str,
        http_status: int,
        seconds: float,
        code: str | None = None,
        entrypoint: str = ENTRYPOINT,
        stages: Mapping[str, float] | None = None,
    ) -> None:
        """Count one inference API request; time it, and its ``stages`` (see ``tfaas.request_timing``), when it
        succeeded (as TF Serving times only OK requests). Written at once; a server's requests go through
        :attr:`tally`, which writes them together.

        ``code`` is TF Serving's error-code name (by default read from ``http_status``); ``entrypoint``
        the front, ``REST`` or ``GRPC`` as TF Serving's latency metric labels its two (``V2``: the Open
        Inference Protocol's REST and gRPC).
        """
        code = code or status_code_name(http_status)
        self.tally.write([Observation(model, version, api, entrypoint, http_status, code, seconds, stages or {})])

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, bound once: every request records 6 to 8 series, and ``labels()`` costs
        about as much as the write itself. The label values are bounded (served models and versions, the
        APIs, the codes, the stages), as prometheus_client keeps every child it made anyway."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))  # NOTE: atomic under the GIL
        return child

    def observe_batch(self, servable_id: ServableId, rows: int, padded: int) -> None:
        """Record one batch the batcher ran: ``rows`` rows of requests, padded to ``padded``."""
        self.batch_size.labels(servable_id.name).observe(padded)
        if padded > rows:
            self.batch_padding_rows.labels(servable_id.name).inc(padded - rows)

    def observe_warmup(self, *, model: str, model_path: str, status: str, records: int, seconds: float) -> None:
        """Record one version's warmup: its outcome, the records it replayed and how long it took."""
        self.warmup_records.labels(model, status).inc(records)
        self.warmup_seconds.labels(model, status).observe(seconds)
        self.tf_warmup_records.labels(model_path, status).inc(records)
        self.tf_warmup_latency.labels(model_path, status).observe(seconds * 1e6)

    def follow_server(self, states: Mapping[str, Mapping[int, ServableState]]) -> None:
        """Set the server's state of every version it knows (a version it forgot reads 0 in every state)."""
        current = {(name, version): s.state for name, versions in states.items() for version, s in versions.items()}
        with self._lock:
            for (model, version), state in {**dict.fromkeys(self._server_states), **current}.items():
                for each in ManagerState:
                    self.server_version_state.labels(model, str(version), each.name).set(int(each is state))
            self._server_states = current

    def watch(self, bus: EventBus) -> Callable[[], None]:
        """Follow the lifecycle on ``bus``; returns the function that stops following it."""
        return bus.subscribe(self.on_state)

    def on_state(self, event: ServableState) -> None:
        """An EventBus subscriber: version states, load latency (LOADING → AVAILABLE) and load failures."""
        key = (event.id.name, event.id.version)
        model, version = event.id.name, str(event.id.version)
        with self._lock:  # NOTE: keeps one version's 0/1 flips in event order
            previous = self._states.get(key)
            self._states[key] = event.state
            if previous is None:
                for state in ManagerState:  # NOTE: every state's series exists from the start, at 0
                    self.version_state.labels(model, version, state.name).set(0)
            elif previous is not event.state:
                self.version_state.labels(model, version, previous.name).set(0)
            self.version_state.labels(model, version, event.state.name).set(1)
            if event.state is ManagerState.LOADING:
                self._loading_since[key] = event.time
                return
            started = self._loading_since.pop(key, None)
        if event.state is ManagerState.AVAILABLE and started is not None:
            self.load_seconds.labels(model).observe(max(0.0, event.time - started))
        elif event.state is ManagerState.END and event.error:
            self.load_failures.labels(model).inc()

    # ---- exposition -----------------------------------------------------------------------------

    def render(self) -> bytes:
        """Every metric in Prometheus's text format (0.0.4), summed over all workers in multi-process mode."""
        from prometheus_client import generate_latest

        return _TF_COUNTER_TOTAL.sub(rb"\1\2", generate_latest(self._summed()))

    def collect(self) -> list[Metric]:
        """Every metric and its samples, summed over all workers in multi-process mode (as :meth:`render`)."""
        return list(self._summed().collect())

    def _summed(self) -> Any:
        """The registry to read: a collector of every worker's files in multi-process mode, else this one."""
        from prometheus_client import REGISTRY, CollectorRegistry

        if self._multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return registry
        return REGISTRY if self._registry is None else self._registry


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process's metrics, in prometheus_client's default registry (built on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default
