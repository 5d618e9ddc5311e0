"""The inference service: TF Serving's data plane over a ``ServerCore``, for every front, with no transport.

Predict, classify, regress, multi-inference, metadata, status, the model list, config reloads and the
loading and unloading of one model by name take typed requests (:mod:`tfaas.inference.types`) and return
typed results; errors are the one hierarchy of :mod:`tfaas.errors`, each with its TF Serving code. A front
(REST, gRPC, …) only parses its wire format with a codec, calls the service inside
:meth:`InferenceService.recorded`, and encodes the answer.

Handles, the batcher and request timing are used here once. Every call has a synchronous form, run on
the calling thread; predict also has a loop-friendly one (:meth:`predict_async`): the inputs are
decoded on the event loop, the model call goes to the batcher's queue (its batch thread wakes the loop)
or, for a request that does not batch, to the service's thread pool. :meth:`in_pool` runs any other call
on that pool, in the request's context (its timing and metrics record follow it).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, AsyncContextManager, Callable, ContextManager, Mapping, Sequence, TypeVar

import numpy as np

from tfaas import request_timing
from tfaas.batching.batching_servable import note_queue
from tfaas.config import ModelConfig
from tfaas.core.servable_handle import ServableHandle
from tfaas.core.states import ManagerState, ServableState
from tfaas.errors import InvalidArgument, NotFound, SignatureNotFound, Unavailable
from tfaas.inference import request_metrics
from tfaas.inference.deadline import Deadline
from tfaas.inference.request_metrics import REST, RequestRecord
from tfaas.inference.types import (
    ClassifyResult,
    ExamplesRequest,
    InferenceTask,
    ModelListing,
    ModelMetadata,
    MultiInferenceRequest,
    MultiInferenceResult,
    PredictRequest,
    PredictResult,
    RegressResult,
    ServedSpec,
    SignatureMetadata,
)
from tfaas.servables import classify_regress
from tfaas.servables.servable import Servable, SignatureInfo
from tfaas.server_core import ModelSpec, ServerCore
from tfaas.tf_serving import CLASSIFY_METHOD_NAME, DEFAULT_SIGNATURE, REGRESS_METHOD_NAME

T = TypeVar("T")

RELOAD_WAIT_SECONDS = 60.0
"""How long a config reload waits for the new config's models to serve before it answers with why not."""


class InferenceService:
    """TF Serving's inference and model APIs over ``core``; ``threads`` sizes the pool of model calls
    that do not batch (and of whatever a front hands to :meth:`in_pool`); ``reload_wait_seconds`` bounds
    how long a config reload waits for its models to serve."""

    def __init__(self, core: ServerCore, threads: int = 4, reload_wait_seconds: float = RELOAD_WAIT_SECONDS) -> None:
        self.core = core
        self._reload_wait_seconds = reload_wait_seconds
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tfaas-inference")

    def close(self) -> None:
        """Stop the thread pool once the calls on it finished."""
        self._pool.shutdown(wait=True)

    def recorded(self, api: str, model: str = "", entrypoint: str = REST) -> ContextManager[RequestRecord]:
        """Count and time one request of ``api`` (``predict``, ``status``, …) in the metrics: wrap all of a
        front's work on it, parse and encode included (see :mod:`tfaas.inference.request_metrics`)."""
        return request_metrics.recorded(self.core, api, model, entrypoint)

    def recorded_async(
        self, api: str, model: str = "", entrypoint: str = REST, timeout_ms: int = 0
    ) -> AsyncContextManager[RequestRecord]:
        """:meth:`recorded` for a front on the event loop, its ``async with`` body bounded to ``timeout_ms``
        (0: no bound; see :class:`~tfaas.inference.deadline.Deadline`): one past it is counted and answered
        as DEADLINE_EXCEEDED."""
        return _RecordedWithDeadline(self.recorded(api, model, entrypoint), Deadline(timeout_ms))

    async def in_pool(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on the service's pool, in the calling request's context, awaited."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(context.run, call, *args))

    # ---- predict --------------------------------------------------------------------------------

    def predict(self, request: PredictRequest) -> PredictResult:
        """Run the request's signature on the calling thread (through the batcher where it batches).

        Raises ``NotFound``/``Unavailable`` for a model or version that does not serve, ``InvalidArgument``
        for an unknown signature, inputs that do not fit it or a bad ``output_filter``, ``Unavailable`` when
        the batch queue is full.
        """
        with self._handle(request.spec) as handle:
            signature, inputs = self._predict_inputs(handle.servable, request)
            with request_timing.timed("run"):
                outputs = handle.servable.run(request.signature_name, inputs)
            return _predict_result(handle, request, signature, outputs)

    async def predict_async(self, request: PredictRequest) -> PredictResult:
        """:meth:`predict` for a caller on an event loop: the model call is awaited, the loop never blocks
        on it. Decoding runs on the loop, so a front passes only small requests here (and large ones to
        ``in_pool(service.predict, request)``)."""
        with self._handle(request.spec) as handle:
            signature, inputs = self._predict_inputs(handle.servable, request)
            outputs = await self._run_async(handle.servable, request.signature_name, inputs)
            return _predict_result(handle, request, signature, outputs)

    def _predict_inputs(
        self, servable: Servable, request: PredictRequest
    ) -> tuple[SignatureInfo, Mapping[str, np.ndarray]]:
        """The signature the request runs and its inputs, decoded for it (timed as ``parse``)."""
        signature = servable.signatures.get(request.signature_name)
        if signature is None:
            raise SignatureNotFound(request.signature_name)
        _check_output_filter(request.output_filter, signature)
        if request.on_version is not None:
            request.on_version(servable.params, servable.labels)
        if callable(request.inputs):
            with request_timing.timed("parse"):
                return signature, request.inputs(signature)
        return signature, request.inputs

    async def _run_async(
        self, servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The model call: through the batcher's queue when the servable batches this request (its batch
        thread wakes the loop), else on a pool thread."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        done = loop.create_future()
        try:
            task = servable.submit(signature_name, inputs, lambda _: loop.call_soon_threadsafe(_settle, done))
            if task is None:
                return await self.in_pool(servable.run, signature_name, inputs)
            await done
            note_queue(task)
            return task.wait()
        finally:
            request_timing.add("run", time.perf_counter() - started)

    # ---- classify, regress, multi-inference --------------------------------------------------------

    def classify(self, request: ExamplesRequest) -> ClassifyResult:
        """Run a classification signature on tf.Examples (TF Serving's checks and messages)."""
        with self._handle(request.spec) as handle:
            return self._classify(handle, request.signature_name, request.examples)

    def regress(self, request: ExamplesRequest) -> RegressResult:
        """Run a regression signature on tf.Examples (TF Serving's checks and messages)."""
        with self._handle(request.spec) as handle:
            return self._regress(handle, request.signature_name, request.examples)

    def multi_inference(self, request: MultiInferenceRequest) -> MultiInferenceResult:
        """Run several classify/regress signatures of one model version on the same examples.

        As TF Serving: every task names the same model (and version or label), no signature twice, and
        each method is classify or regress; the tasks see one version, held for the whole call.
        """
        spec = _multi_inference_spec(request.tasks)
        with self._handle(spec) as handle:
            results: list[ClassifyResult | RegressResult] = []
            for task in request.tasks:
                run = self._classify if task.method_name == CLASSIFY_METHOD_NAME else self._regress
                results.append(run(handle, task.signature_name, request.examples))
            return MultiInferenceResult(results)

    def _classify(self, handle: ServableHandle, signature_name: str, examples: list[bytes]) -> ClassifyResult:
        with request_timing.timed("run"):
            classes, scores = classify_regress.classify(handle.servable, signature_name, examples)
        return ClassifyResult(_served(handle, signature_name), classes, scores)

    def _regress(self, handle: ServableHandle, signature_name: str, examples: list[bytes]) -> RegressResult:
        with request_timing.timed("run"):
            values = classify_regress.regress(handle.servable, signature_name, examples)
        return RegressResult(_served(handle, signature_name), values)

    # ---- metadata, status, models --------------------------------------------------------------------

    def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """The SignatureDefs of the version ``spec`` resolves to."""
        with self._handle(spec) as handle:
            return ModelMetadata(_served(handle, ""), handle.servable.signature_def_map_json())

    def signature_metadata(self, spec: ModelSpec, signature_name: str = DEFAULT_SIGNATURE) -> SignatureMetadata:
        """The signature ``signature_name`` of the version ``spec`` resolves to, and the versions its model
        serves; ``SignatureNotFound`` when the version has no such signature."""
        with self._handle(spec) as handle:
            signature = handle.servable.signatures.get(signature_name)
            if signature is None:
                raise SignatureNotFound(signature_name)
            versions = self.core.available_versions(spec.name)
            return SignatureMetadata(_served(handle, signature_name), signature, versions)

    def model_ready(self, spec: ModelSpec) -> ServedSpec:
        """The version ``spec`` resolves to, when it serves; else what a predict would raise (``NotFound``,
        ``Unavailable`` while it loads)."""
        with self._handle(spec) as handle:
            return _served(handle, "")

    def status(self, name: str, version: int | None = None) -> list[ServableState]:
        """The server's state of every known version of ``name`` (highest first), or of one; ``NotFound``
        with TF Serving's messages for an unknown model or version."""
        return self.core.version_states(name, version)

    def list_models(self) -> list[ModelListing]:
        """Every served model, with its labels and the server's state of each version."""
        core = self.core
        return [
            ModelListing(name, dict(core.version_labels(name)), list(core.states(name).values()))
            for name in core.model_names
        ]

    def reload_config(self, models: Sequence[ModelConfig]) -> None:
        """Serve exactly ``models`` from now on (TF Serving's ``HandleReloadConfigRequest``): new ones load,
        those left out unload, changed ones follow their new policy. Returns once every model of the new
        config serves (no version of it still loading), as TF Serving's does; ``Unavailable`` with the reasons
        when one failed to load or did not serve within ``reload_wait_seconds`` (the new config stays in force
        either way)."""
        self.core.set_model_config(models)
        names = [model.name for model in models]
        self.core.wait_until(lambda: all(self._settled(name) for name in names), self._reload_wait_seconds)
        not_serving = self._why_not_serving(names)
        if not_serving:
            reasons = "; ".join(f"{name}: {why}" for name, why in sorted(not_serving.items()))
            raise Unavailable(f"The new model config is in force, but not every model serves: {reasons}")

    # ---- loading and unloading one model (the Open Inference Protocol's model repository) -------------

    def load_model(self, name: str) -> None:
        """Serve ``name``, a configured model or one of the model repository, again after an unload (or now,
        when it was just copied into the repository). Returns once it serves and no version of it is still
        loading, as Triton's load does;
        ``NotFound`` when there is no such model, ``Unavailable`` with the reason when it failed to load or
        did not serve within ``reload_wait_seconds`` (it is loaded as asked either way)."""
        if not self.core.set_model_loaded(name, True):
            raise NotFound(f"No model {name} is configured or in the model repository")
        self.core.wait_until(lambda: self._settled(name), self._reload_wait_seconds)
        not_serving = self._why_not_serving([name])
        if not_serving:
            raise Unavailable(f"Model {name} is loaded as asked, but does not serve: {not_serving[name]}")

    def unload_model(self, name: str) -> None:
        """Withhold ``name`` from the served models until :meth:`load_model`: new requests for it are a
        ``NotFound``, its versions unload once the requests under way finished, and readiness no longer waits
        for it. Returns once this worker no longer serves it; ``NotFound`` when there is no such model."""
        if not self.core.set_model_loaded(name, False):
            raise NotFound(f"No model {name} is configured or in the model repository")
        self.core.wait_until(lambda: name not in self.core.model_names, self._reload_wait_seconds)

    def model_index(self) -> list[ModelListing]:
        """Every model the server knows, by name: those it serves (as :meth:`list_models`) and those unloaded
        (``unloaded``, with the last states of their versions)."""
        unloaded = [
            ModelListing(name, {}, list(self.core.states(name).values()), unloaded=True)
            for name in self.core.unloaded_models
        ]
        return sorted(self.list_models() + unloaded, key=lambda listing: listing.name)

    def _why_not_serving(self, names: Sequence[str]) -> dict[str, str]:
        """Why each of ``names`` that serves no version does not: readiness's reason, else its failed version."""
        not_ready = self.core.not_ready()
        reasons = {}
        for name in names:
            if not self.core.available_versions(name):
                failed = [s for s in self.core.states(name).values() if s.error]
                fallback = f"version {failed[0].id.version} failed to load: {failed[0].error}" if failed else ""
                reasons[name] = not_ready.get(name) or fallback or "it serves no version"
        return reasons

    def _settled(self, name: str) -> bool:
        """Whether ``name`` has no version still loading, and serves one or has one that failed to load."""
        states = self.core.states(name).values()
        loading = any(s.state in (ManagerState.START, ManagerState.LOADING) for s in states)
        return not loading and (bool(self.core.available_versions(name)) or any(s.error for s in states))

    def _handle(self, spec: ModelSpec) -> ServableHandle:
        """A handle on the version ``spec`` resolves to; the request's metrics are labelled with it."""
        handle = self.core.get_handle(spec)
        request_metrics.note_version(handle.id.version)
        return handle


def _predict_result(
    handle: ServableHandle, request: PredictRequest, signature: SignatureInfo, outputs: dict[str, np.ndarray]
) -> PredictResult:
    if request.output_filter:
        outputs = {alias: outputs[alias] for alias in request.output_filter}
    return PredictResult(_served(handle, request.signature_name), outputs)


def _served(handle: ServableHandle, signature_name: str) -> ServedSpec:
    return ServedSpec(handle.id.name, handle.id.version, signature_name)


def _check_output_filter(output_filter: Sequence[str], signature: SignatureInfo) -> None:
    """TF Serving's checks of ``output_filter``: known aliases, none twice."""
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)


def _multi_inference_spec(tasks: Sequence[InferenceTask]) -> ModelSpec:
    """The one model spec every task names, after TF Serving's checks of a MultiInferenceRequest."""
    if not tasks:
        raise InvalidArgument("Expected at least one task")
    spec = tasks[0].spec
    signatures: set[str] = set()
    for task in tasks:
        if task.spec.name != spec.name:
            raise InvalidArgument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        if task.spec != spec:
            raise InvalidArgument("ModelSpecs in a MultiInferenceRequest must access the same model version.")
        if task.signature_name in signatures:
            raise InvalidArgument(f"Duplicate evaluation of signature: {task.signature_name}")
        if task.method_name not in (CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME):
            raise InvalidArgument(f"Unsupported signature method_name: {task.method_name}")
        signatures.add(task.signature_name)
    return spec


class _RecordedWithDeadline:
    """The context manager of :meth:`InferenceService.recorded_async`: the request's record around its deadline,
    so a request past its deadline is counted as DEADLINE_EXCEEDED.

    NOTE: a class, not a generator context manager (see ``request_metrics.Recording``): every request on the
    event loop enters one.
    """

    __slots__ = ("_recording", "_deadline")

    def __init__(self, recording: ContextManager[RequestRecord], deadline: Deadline) -> None:
        self._recording = recording
        self._deadline = deadline

    async def __aenter__(self) -> RequestRecord:
        record = self._recording.__enter__()
        try:
            await self._deadline.__aenter__()
        except BaseException as error:
            self._recording.__exit__(type(error), error, error.__traceback__)
            raise
        return record

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._deadline.__aexit__(kind, exc, tb)
        except BaseException as error:
            self._recording.__exit__(type(error), error, error.__traceback__)
            raise
        self._recording.__exit__(kind, exc, tb)


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():  # NOTE: cancelled when the caller stopped waiting (graceful timeout)
        done.set_result(None)
