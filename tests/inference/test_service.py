"""The inference service over a real ServerCore whose loader is a small fake (no TensorFlow, no transport)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.errors import InvalidArgument, NotFound, Unavailable
from tfaas.inference.request_metrics import GRPC
from tfaas.inference.service import InferenceService
from tfaas.inference.types import (
    ExamplesRequest,
    InferenceTask,
    MultiInferenceRequest,
    PredictRequest,
    ServedSpec,
)
from tfaas.metrics import Metrics
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec, ServerCore
from tfaas.tf_serving import CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME

FLOAT = "DT_FLOAT"
PREDICT = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorInfo("x", "x:0", FLOAT, (None, 1))},
    {"y": TensorInfo("y", "y:0", FLOAT, (None, 1)), "z": TensorInfo("z", "z:0", FLOAT, (None, 1))},
)
REGRESS = SignatureInfo(
    "regress",
    REGRESS_METHOD_NAME,
    {"inputs": TensorInfo("inputs", "i:0", "DT_STRING", (None,))},
    {"outputs": TensorInfo("outputs", "o:0", FLOAT, (None,))},
)
CLASSIFY = SignatureInfo(
    "classify",
    CLASSIFY_METHOD_NAME,
    {"inputs": TensorInfo("inputs", "i:0", "DT_STRING", (None,))},
    {"scores": TensorInfo("scores", "s:0", FLOAT, (None, 2))},
)


class TimesVersion:
    """``y = x * version``, ``z = -x``; regresses each example to its length, classifies to (len, -len)."""

    signatures = {"serving_default": PREDICT, "regress": REGRESS, "classify": CLASSIFY}

    def __init__(self, id: ServableId) -> None:
        self.version = id.version

    def signature_def_map_json(self):
        return {"signature_def": {"serving_default": {"method_name": PREDICT.method_name}}}

    def run(self, signature_name, inputs):
        if signature_name == "serving_default":
            x = np.asarray(inputs["x"], np.float32)
            return {"y": x * np.float32(self.version), "z": -x}
        lengths = np.array([len(e) for e in inputs["inputs"]], np.float32)
        if signature_name == "regress":
            return {"outputs": lengths}
        return {"scores": np.stack([lengths, -lengths], axis=1)}

    def submit(self, signature_name, inputs, on_done=None):
        return None


class TimesVersionLoader:
    def __init__(self, id: ServableId, path: str) -> None:
        self.id = id

    def load(self) -> TimesVersion:
        return TimesVersion(self.id)

    def unload(self) -> None:
        pass


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceService]:
    base = tmp_path_factory.mktemp("models") / "m"
    for version in (1, 2):
        (base / str(version)).mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"fake")
    from prometheus_client import CollectorRegistry

    model = ModelConfig(
        name="m", base_path=str(base), version_policy=ServableVersionPolicy("all"), version_labels={"stable": 1}
    )
    settings = Settings(
        models=(model,), enable_batching=False, version_settle_seconds=0, file_system_poll_wait_seconds=-1
    )
    core = ServerCore(settings, loader_factory=TimesVersionLoader, metrics=Metrics(CollectorRegistry()))
    core.start()
    assert core.wait_until(lambda: core.available_versions("m") == [2, 1], 5)
    service = InferenceService(core, threads=2)
    yield service
    service.close()
    core.stop()


def test_predict_resolves_latest_version_and_label(service: InferenceService) -> None:
    x = np.array([[3.0]], np.float32)
    latest = service.predict(PredictRequest(ModelSpec("m"), {"x": x}))
    assert latest.spec == ServedSpec("m", 2, "serving_default")
    np.testing.assert_array_equal(latest.outputs["y"], [[6.0]])
    stable = service.predict(PredictRequest(ModelSpec("m", label="stable"), {"x": x}))
    assert stable.spec.version == 1 and stable.outputs["y"].tolist() == [[3.0]]


def test_a_decoder_gets_the_signature_that_runs(service: InferenceService) -> None:
    seen = []

    def decode(signature: SignatureInfo):
        seen.append(signature.name)
        return {"x": np.ones((2, 1), np.float32)}

    result = service.predict(PredictRequest(ModelSpec("m", version=1), decode))
    assert seen == ["serving_default"] and result.outputs["y"].shape == (2, 1)


def test_output_filter_keeps_only_the_named_outputs_and_checks_them(service: InferenceService) -> None:
    request = PredictRequest(ModelSpec("m"), {"x": np.ones((1, 1), np.float32)}, output_filter=["z"])
    assert list(service.predict(request).outputs) == ["z"]
    request.output_filter = ["nope"]
    with pytest.raises(InvalidArgument, match=r"output tensor alias not found in signature: nope .*\{y,z\}"):
        service.predict(request)
    request.output_filter = ["y", "y"]
    with pytest.raises(InvalidArgument, match="duplicate output tensor alias: y"):
        service.predict(request)


def test_unknown_model_version_and_signature_are_tf_servings_errors(service: InferenceService) -> None:
    x = {"x": np.ones((1, 1), np.float32)}
    with pytest.raises(NotFound):
        service.predict(PredictRequest(ModelSpec("nope"), x))
    with pytest.raises(NotFound):
        service.predict(PredictRequest(ModelSpec("m", version=7), x))
    with pytest.raises(InvalidArgument, match='Serving signature name: "other" not found in signature def'):
        service.predict(PredictRequest(ModelSpec("m"), x, signature_name="other"))


def test_predict_async_answers_as_predict(service: InferenceService) -> None:
    request = PredictRequest(ModelSpec("m"), {"x": np.array([[1.5]], np.float32)})
    result = asyncio.run(service.predict_async(request))
    assert result.spec.version == 2 and result.outputs["y"].tolist() == [[3.0]]


def test_classify_regress_and_multi_inference(service: InferenceService) -> None:
    examples = [b"ab", b"abcd"]
    regressed = service.regress(ExamplesRequest(ModelSpec("m"), examples, "regress"))
    assert regressed.values.tolist() == [2.0, 4.0] and regressed.spec == ServedSpec("m", 2, "regress")
    classified = service.classify(ExamplesRequest(ModelSpec("m"), examples, "classify"))
    assert classified.classes is None and classified.scores.tolist() == [[2.0, -2.0], [4.0, -4.0]]
    tasks = [
        InferenceTask(ModelSpec("m", version=1), "classify", CLASSIFY_METHOD_NAME),
        InferenceTask(ModelSpec("m", version=1), "regress", REGRESS_METHOD_NAME),
    ]
    results = service.multi_inference(MultiInferenceRequest(tasks, examples)).results
    assert [r.spec for r in results] == [ServedSpec("m", 1, "classify"), ServedSpec("m", 1, "regress")]
    with pytest.raises(InvalidArgument, match="Duplicate evaluation of signature: regress"):
        service.multi_inference(MultiInferenceRequest([tasks[1], tasks[1]], examples))
    other = InferenceTask(ModelSpec("other"), "regress", REGRESS_METHOD_NAME)
    with pytest.raises(InvalidArgument, match="must access the same model name"):
        service.multi_inference(MultiInferenceRequest([tasks[0], other], examples))


def test_metadata_status_and_list(service: InferenceService) -> None:
    metadata = service.metadata(ModelSpec("m", version=1))
    assert metadata.spec == ServedSpec("m", 1, "") and "serving_default" in metadata.signature_def_map["signature_def"]
    assert [s.id.version for s in service.status("m")] == [2, 1]
    with pytest.raises(NotFound, match="Could not find version 5 of model m"):
        service.status("m", 5)
    (listing,) = service.list_models()
    assert listing.name == "m" and listing.version_labels == {"stable": 1} and len(listing.states) == 2


def test_recorded_counts_each_outcome_with_its_entrypoint(service: InferenceService) -> None:
    metrics = service.core.metrics
    with service.recorded("predict", "m", GRPC):
        service.predict(PredictRequest(ModelSpec("m"), {"x": np.ones((1, 1), np.float32)}))
    with pytest.raises(NotFound), service.recorded("predict", "nope", GRPC):
        service.predict(PredictRequest(ModelSpec("nope"), {}))
    text = metrics.render().decode()
    assert 'tfaas_requests_total{api="predict",code="200",model="m",version="2"}' in text
    assert 'tfaas_requests_total{api="predict",code="404",model="",version=""}' in text
    assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="GRPC",model_name="m"}' in text


def test_reload_config_serves_exactly_the_new_models(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "saved_model.pb").write_bytes(b"fake")
    from prometheus_client import CollectorRegistry

    a, b = (ModelConfig(name=n, base_path=str(tmp_path / n)) for n in ("a", "b"))
    settings = Settings(models=(a,), enable_batching=False, version_settle_seconds=0, file_system_poll_wait_seconds=-1)
    core = ServerCore(settings, loader_factory=TimesVersionLoader, metrics=Metrics(CollectorRegistry()))
    core.start()
    service = InferenceService(core, threads=1, reload_wait_seconds=1)
    try:
        assert core.wait_until_ready(5)
        service.reload_config([b])
        assert service.predict(PredictRequest(ModelSpec("b"), {"x": np.ones((1, 1), np.float32)})).spec.version == 1
        assert core.wait_until(lambda: core.model_names == ["b"], 5)
        with pytest.raises(NotFound):
            service.predict(PredictRequest(ModelSpec("a"), {"x": np.ones((1, 1), np.float32)}))
        (tmp_path / "empty").mkdir()
        empty = ModelConfig(name="empty", base_path=str(tmp_path / "empty"))
        with pytest.raises(Unavailable, match="not every model serves: empty: "):
            service.reload_config([b, empty])
    finally:
        service.close()
        core.stop()


def test_signature_metadata_and_model_ready(service: InferenceService) -> None:
    metadata = service.signature_metadata(ModelSpec("m", label="stable"))
    assert metadata.spec == ServedSpec("m", 1, "serving_default") and metadata.signature == PREDICT
    assert metadata.versions == [2, 1]
    with pytest.raises(InvalidArgument, match='Serving signature name: "nope" not found'):
        service.signature_metadata(ModelSpec("m"), "nope")
    assert service.model_ready(ModelSpec("m")) == ServedSpec("m", 2, "")
    with pytest.raises(NotFound):
        service.model_ready(ModelSpec("m", version=3))


def test_unload_withholds_a_model_until_load_and_the_index_lists_it(tmp_path: Path) -> None:
    """A configured model and one of the model repository: unloaded, each leaves the served models (and
    readiness) and stays in the index; loaded, it serves again."""
    (tmp_path / "conf" / "1").mkdir(parents=True)
    (tmp_path / "conf" / "1" / "saved_model.pb").write_bytes(b"fake")
    repository = tmp_path / "repository"
    (repository / "up" / "1").mkdir(parents=True)
    (repository / "up" / "1" / "saved_model.pb").write_bytes(b"fake")
    from prometheus_client import CollectorRegistry

    conf = ModelConfig(name="conf", base_path=str(tmp_path / "conf"))
    settings = Settings(
        models=(conf,),
        model_repository=str(repository),
        enable_batching=False,
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
    )
    core = ServerCore(settings, loader_factory=TimesVersionLoader, metrics=Metrics(CollectorRegistry()))
    core.start()
    service = InferenceService(core, threads=1, reload_wait_seconds=2)
    x = {"x": np.ones((1, 1), np.float32)}
    try:
        assert core.wait_until(lambda: core.is_ready() and core.readiness_models == ["conf", "up"], 5)
        service.unload_model("conf")
        service.unload_model("up")
        assert core.model_names == [] and core.unloaded_models == ["conf", "up"] and core.is_ready()
        with pytest.raises(NotFound):
            service.predict(PredictRequest(ModelSpec("conf"), x))
        index = service.model_index()
        assert [(m.name, m.unloaded) for m in index] == [("conf", True), ("up", True)]
        assert core.wait_until(lambda: service.model_index()[0].states[0].state.name == "END", 5)

        service.load_model("up")
        assert service.predict(PredictRequest(ModelSpec("up"), x)).spec.version == 1
        assert [(m.name, m.unloaded) for m in service.model_index()] == [("conf", True), ("up", False)]
        service.load_model("conf")
        assert core.model_names == ["conf", "up"] and core.unloaded_models == []
        assert service.predict(PredictRequest(ModelSpec("conf"), x)).spec.version == 1

        for call in (service.load_model, service.unload_model):
            with pytest.raises(NotFound, match="No model nope is configured or in the model repository"):
                call("nope")
        (repository / "broken" / "1").mkdir(parents=True)  # NOTE: a version directory with no model in it
        with pytest.raises(Unavailable, match="Model broken is loaded as asked, but does not serve: "):
            service.load_model("broken")
    finally:
        service.close()
        core.stop()
