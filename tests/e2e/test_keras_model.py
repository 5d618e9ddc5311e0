"""Serving your own Keras model as the README says: ``model.export(base/1)`` serves; a ``.keras`` file does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.server import ServerProcess, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keras_bases(tmp_path_factory) -> dict[str, Path]:
    """``exported``: a Keras model exported as the README says; ``keras_file``: the same model saved as ``.keras``."""
    import keras

    features = keras.Input(shape=(3,), name="features")
    score = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="ones")(features)
    model = keras.Model(features, score)
    root = tmp_path_factory.mktemp("keras")
    model.export(str(root / "exported" / "1"), verbose=False)
    (root / "keras_file" / "1").mkdir(parents=True)
    model.save(str(root / "keras_file" / "1" / "model.keras"))
    return {"exported": root / "exported", "keras_file": root / "keras_file"}


@pytest.fixture(scope="module")
def server(start_server, keras_bases: dict[str, Path], tmp_path_factory) -> ServerProcess:
    config = tmp_path_factory.mktemp("keras_config") / "tfaas.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": n, "base_path": str(p)} for n, p in keras_bases.items()]}))
    server = start_server("--config", str(config))
    server.wait_available("exported", 1)
    return server


def test_an_exported_keras_model_answers_predict(server):
    response = server.post("/v1/models/exported:predict", json={"instances": [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[7.0], [1.0]]}  # ones · x + 1


def test_its_signature_names_keras_input(server):
    metadata = server.get("/v1/models/exported/metadata").json()
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert list(inputs) == ["features"]


def test_a_keras_file_is_not_a_saved_model_and_its_status_says_what_to_do(server):
    wait_for(lambda: server.version_states("keras_file").get(1) == "END", timeout=60)
    status = server.get("/v1/models/keras_file").json()["model_version_status"][0]["status"]
    assert "model.keras is a Keras file, not a SavedModel" in status["error_message"]
    assert "model.export(path)" in status["error_message"]
    response = server.post("/v1/models/keras_file:predict", json={"instances": [[1.0, 2.0, 3.0]]})
    assert response.status_code == 404, response.text
    assert response.json() == {"error": "Servable not found for request: Latest(keras_file)"}
