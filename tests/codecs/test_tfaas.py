"""TFaaS's inference calls as the TFaaS API makes them: row and image requests run by the inference service
(over a core serving one given servable: a real model, or a fake), the first output row, top labels."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pytest

from tests.servables.tfaas_models import (
    BLUE,
    GREEN,
    IMAGE_LABELS,
    NOT_AN_IMAGE,
    RED,
    bmp_bytes,
    frozen_graph_expected,
    gif_bytes,
    jpeg_bytes,
    png_bytes,
    write_frozen_graph,
    write_image_model,
    write_row_model,
)
from tfaas.codecs.tfaas import VersionFiles, decode_image, first_row, image_request, row_request, top_labels
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.errors import InvalidArgument
from tfaas.inference.service import InferenceService
from tfaas.servables.loaders import version_loader
from tfaas.servables.model_params import ModelParams
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec, ServerCore

ROW = [1.0, 2.0, 3.0, 4.0]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    write_frozen_graph(repo / "frozen" / "1")
    write_row_model(repo / "row" / "1")
    write_image_model(repo / "image" / "1")
    write_image_model(repo / "grey" / "1", img_channels=1)  # NOTE: its signature takes 3 channels all the same
    return repo


def _load(repo: Path, name: str) -> Any:
    return version_loader(ServableId(name, 1), str(repo / name / "1")).load()


@pytest.fixture(scope="module")
def frozen(repo: Path) -> Any:
    return _load(repo, "frozen")


@pytest.fixture(scope="module")
def row_model(repo: Path) -> Any:
    return _load(repo, "row")


@pytest.fixture(scope="module")
def image_model(repo: Path) -> Any:
    return _load(repo, "image")


class ServingLoader:
    """Loads the one servable a test serves."""

    def __init__(self, servable: Any) -> None:
        self.servable = servable

    def load(self) -> Any:
        return self.servable

    def unload(self) -> None:
        pass


@contextmanager
def serving(servable: Any) -> Iterator[InferenceService]:
    """An inference service over a core serving ``servable`` as version 1 of model ``m``."""
    with tempfile.TemporaryDirectory() as base:
        (Path(base) / "1").mkdir()
        (Path(base) / "1" / "saved_model.pb").write_bytes(b"fake")  # NOTE: a complete version, to the source
        model = ModelConfig(name="m", base_path=base)
        settings = Settings(
            models=(model,), enable_batching=False, version_settle_seconds=0, file_system_poll_wait_seconds=-1
        )
        core = ServerCore(settings, loader_factory=lambda id, path: ServingLoader(servable))
        core.start()
        service = InferenceService(core, threads=1)
        try:
            assert core.wait_until_ready(10)
            yield service
        finally:
            service.close()
            core.stop()


def predict_row(servable: Any, values: Any) -> np.ndarray:
    """TFaaS's ``/json`` and ``/proto`` call on ``servable``."""
    with serving(servable) as service:
        return first_row(service.predict(row_request(ModelSpec("m"), values)))


def classify_image(servable: Any, image: bytes) -> tuple[np.ndarray, VersionFiles]:
    """TFaaS's ``/image`` call on ``servable``, and the version files it was told."""
    version = VersionFiles()
    with serving(servable) as service:
        return first_row(service.predict(image_request(ModelSpec("m"), image, version))), version


class FakeServable:
    """A servable with a given ``serving_default`` whose ``run`` answers ``outputs``."""

    def __init__(self, inputs: list[str], outputs: Mapping[str, np.ndarray]) -> None:
        def info(alias: str) -> TensorInfo:
            return TensorInfo(alias, f"{alias}:0", "DT_FLOAT", None)

        self.signatures = {
            "serving_default": SignatureInfo(
                "serving_default",
                "tensorflow/serving/predict",
                {alias: info(alias) for alias in inputs},
                {alias: info(alias) for alias in sorted(outputs)},
            )
        }
        self.params: ModelParams | None = None
        self.labels: list[str] = []
        self.outputs = dict(outputs)
        self.fed: dict[str, np.ndarray] = {}

    def signature_def_map_json(self) -> dict[str, Any]:
        return {}

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.fed = dict(inputs)
        return self.outputs

    def submit(self, signature_name: str, inputs: Mapping[str, np.ndarray], on_done: Any = None) -> None:
        return None


# --- predict_row -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["frozen", "row_model"])
def test_predict_row(model: str, request: pytest.FixtureRequest) -> None:
    servable = request.getfixturevalue(model)
    result = predict_row(servable, ROW)
    assert result.dtype == np.float32 and result.shape == (1,)
    np.testing.assert_allclose(result, frozen_graph_expected(ROW), rtol=1e-6)


def test_predict_row_takes_ints(frozen: Any) -> None:
    np.testing.assert_allclose(predict_row(frozen, [1, 2, 3, 4]), frozen_graph_expected(ROW), rtol=1e-6)


@pytest.mark.parametrize("model", ["frozen", "row_model"])
def test_predict_row_wrong_length(model: str, request: pytest.FixtureRequest) -> None:
    with pytest.raises(InvalidArgument, match=r"has shape \[1,3\] but the signature expects \[-1,4\]"):
        predict_row(request.getfixturevalue(model), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("values", [["a", "b", "c", "d"], [[1.0, 2.0], [3.0, 4.0]], [None, 1.0, 2.0, 3.0]])
def test_predict_row_non_numbers(frozen: Any, values: list) -> None:
    with pytest.raises(InvalidArgument, match="Row values must be"):
        predict_row(frozen, values)


def test_predict_row_feeds_one_row_of_float32() -> None:
    servable = FakeServable(["x"], {"b": np.array([[9.0]]), "a": np.array([[1, 2], [3, 4]], dtype=np.int64)})
    result = predict_row(servable, [0.5, 1.5])
    assert servable.fed["x"].dtype == np.float32 and servable.fed["x"].tolist() == [[0.5, 1.5]]
    # The first output by alias, its first row, as float32.
    assert result.dtype == np.float32 and result.tolist() == [1.0, 2.0]


def test_predict_row_output_ranks() -> None:
    assert predict_row(FakeServable(["x"], {"y": np.array([7.0, 8.0])}), [1.0]).tolist() == [7.0, 8.0]
    assert predict_row(FakeServable(["x"], {"y": np.array(7.0)}), [1.0]).tolist() == [7.0]
    assert predict_row(FakeServable(["x"], {"y": np.ones((1, 2, 2))}), [1.0]).tolist() == [1.0] * 4


def test_predict_row_rejects_several_inputs() -> None:
    with pytest.raises(InvalidArgument, match=r'"serving_default" signature takes 2 inputs \(a, b\)'):
        predict_row(FakeServable(["a", "b"], {"y": np.array([[1.0]])}), [1.0])


def test_predict_row_rejects_string_outputs() -> None:
    with pytest.raises(InvalidArgument, match='Output "y" has dtype object'):
        predict_row(FakeServable(["x"], {"y": np.array([[b"a"]], dtype=object)}), [1.0])


def test_predict_row_without_serving_default() -> None:
    servable = FakeServable(["x"], {"y": np.array([[1.0]])})
    servable.signatures = {}
    with pytest.raises(InvalidArgument, match='"serving_default" not found'):
        predict_row(servable, [1.0])


# --- classify_image --------------------------------------------------------------------------------


def test_image_model_params_and_labels(image_model: Any) -> None:
    assert image_model.labels == IMAGE_LABELS
    assert image_model.params.img_channels == 3


@pytest.mark.parametrize(
    ("image", "label"),
    [
        (png_bytes(RED), "red"),
        (png_bytes(GREEN, size=(5, 9)), "green"),
        (png_bytes((0, 0, 255, 255), channels=4), "blue"),
        (jpeg_bytes(GREEN), "green"),
        (gif_bytes(BLUE), "blue"),
        (bmp_bytes(RED), "red"),
    ],
    ids=["png", "png-5x9", "png-rgba", "jpeg", "gif", "bmp"],
)
def test_classify_image(image_model: Any, image: bytes, label: str) -> None:
    probabilities, version = classify_image(image_model, image)
    assert version.params is image_model.params and version.labels is image_model.labels
    assert probabilities.dtype == np.float32 and probabilities.shape == (3,)
    assert top_labels(probabilities, version.labels)[0][0] == label
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_classify_image_feeds_raw_pixels() -> None:
    servable = FakeServable(["images"], {"scores": np.array([[0.25, 0.75]])})
    probabilities, version = classify_image(servable, png_bytes((10, 20, 30), size=(2, 3)))
    assert probabilities.tolist() == [0.25, 0.75] and (version.params, version.labels) == (None, [])
    fed = servable.fed["images"]
    assert fed.dtype == np.float32 and fed.shape == (1, 2, 3, 3)
    assert fed[0, 1, 2].tolist() == [10.0, 20.0, 30.0]


@pytest.mark.parametrize(
    ("image", "channels", "pixel"),
    [
        (png_bytes((10, 20, 30)), 1, [18.0]),
        (png_bytes((10, 20, 30)), 4, [10.0, 20.0, 30.0, 255.0]),
        (png_bytes((10, 20, 30)), None, [10.0, 20.0, 30.0]),
        (png_bytes((200,), channels=1), 3, [200.0, 200.0, 200.0]),
        (gif_bytes((10, 20, 30)), 1, [18.0]),
        (gif_bytes((10, 20, 30)), 4, [10.0, 20.0, 30.0, 255.0]),
    ],
)
def test_decode_image_channels(image: bytes, channels: int | None, pixel: list[float]) -> None:
    pixels = decode_image(image, channels)
    assert pixels.dtype == np.float32 and pixels.shape[2] == len(pixel)
    assert pixels[0, 0].tolist() == pixel


@pytest.mark.parametrize("image", [NOT_AN_IMAGE, b"", png_bytes()[:20]], ids=["text", "empty", "truncated"])
def test_not_an_image(image_model: Any, image: bytes) -> None:
    with pytest.raises(InvalidArgument, match=r"^Invalid image: ") as raised:
        classify_image(image_model, image)
    assert "{{" not in raised.value.message and "[Op:" not in raised.value.message


def test_bad_channel_count() -> None:
    servable = FakeServable(["images"], {"scores": np.array([[1.0]])})
    servable.params = ModelParams(img_channels=2)
    with pytest.raises(InvalidArgument, match="Image channels must be 1, 3 or 4, not 2"):
        classify_image(servable, png_bytes())


def test_image_the_model_does_not_take(repo: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"has shape \[1,8,8,1\] but the signature expects \[1,-1,-1,3\]"):
        classify_image(_load(repo, "grey"), png_bytes())


# --- top_labels ------------------------------------------------------------------------------------


def test_top_labels() -> None:
    probabilities = np.array([0.1, 0.5, 0.05, 0.2, 0.15, 0.0, 0.3], dtype=np.float32)
    labels = ["a", "b", "c", "d", "e", "f", "g"]
    assert [label for label, _ in top_labels(probabilities, labels)] == ["b", "g", "d", "e", "a"]
    assert [label for label, _ in top_labels(probabilities, labels, k=2)] == ["b", "g"]
    assert top_labels(probabilities, labels, k=1) == [("b", pytest.approx(0.5))]
    assert isinstance(top_labels(probabilities, labels)[0][1], float)


def test_top_labels_pairs_by_index() -> None:
    # TFaaS's example: fewer labels than probabilities pairs only the labelled indices.
    assert top_labels([2.8e-8, 1.0, 4.6e-18, 0.5], ["qcd", "higgs", "muons"]) == [
        ("higgs", 1.0),
        ("qcd", pytest.approx(2.8e-8)),
        ("muons", pytest.approx(4.6e-18)),
    ]
    assert top_labels([0.9], ["a", "b", "c"]) == [("a", pytest.approx(0.9))]
    assert top_labels([0.9, 0.1], []) == []
    assert top_labels(np.array([[0.2, 0.8]]), ["a", "b"]) == [("b", pytest.approx(0.8)), ("a", pytest.approx(0.2))]
