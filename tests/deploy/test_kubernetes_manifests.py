"""deploy/kubernetes and deploy/kserve checked offline, without a cluster.

- Every Kubernetes object is validated against Kubernetes' own JSON schemas (``kubernetes-validate``, the
  newest version it ships, strict: an unknown field is an error).
- The KServe objects are read with the KServe SDK's own models (``kserve``), in a venv of their own
  (the SDK pins ``protobuf<7``; tfaas needs 7), made once per machine and KServe version.
- What the manifests say about tfaas is checked against tfaas itself: the probe and metrics paths are
  routes of its OpenAPI document, the ConfigMap's model list parses with its config reader, and the
  container arguments parse with its command line into the settings the manifests rely on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tfaas.cli import build_parser
from tfaas.config import Settings, load_settings, read_model_config_file
from tfaas.server import worker_count

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
KSERVE_DIR = REPO / "deploy" / "kserve"
OBJECT_STORAGE = KUBERNETES_DIR / "components" / "object-storage"
SCHEMA_VERSION = kubernetes_validate.latest_version()
"""The newest Kubernetes version whose schemas kubernetes-validate ships."""

KSERVE_VERSION = "0.21.0"
KUBERNETES_CLIENT_VERSION = "35.0.0"
"""The kubernetes client installed beside KServe's SDK for the Kubernetes types its models name.

NOTE: 35 is the last whose models have the generator's old type names (``dict(str, str)``), which the
SDK's deserializer reads; from 36 they are ``dict[str, str]``, and 37 moved to pydantic models."""
KSERVE_TF_SERVING_ARGS = [
    "--model_name={{.Name}}",
    "--port=9000",
    "--rest_api_port=8080",
    "--model_base_path=/mnt/models",
    "--rest_api_timeout_in_ms=60000",
]
"""The arguments KServe gives its TF Serving runtime (config/runtimes/kserve-tensorflow-serving.yaml)."""
MIB = 2**20


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of one file (empty ones left out)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def resources_of(directory: Path) -> dict[str, dict[str, Any]]:
    """The objects a kustomization lists, by kind (one of each kind here)."""
    objects = [doc for name in kustomization(directory)["resources"] for doc in load_documents(directory / name)]
    by_kind = {obj["kind"]: obj for obj in objects}
    assert len(by_kind) == len(objects), "one object of each kind"
    return by_kind


K8S = resources_of(KUBERNETES_DIR)
KSERVE = resources_of(KSERVE_DIR)
DEPLOYMENT = K8S["Deployment"]
POD = DEPLOYMENT["spec"]["template"]
(TFAAS,) = POD["spec"]["containers"]
(RUNTIME_CONTAINER,) = KSERVE["ServingRuntime"]["spec"]["containers"]
RUNTIME_EXAMPLE = dict(
    RUNTIME_CONTAINER,
    args=[
        arg.replace("{{.Name}}", KSERVE["InferenceService"]["metadata"]["name"]) for arg in RUNTIME_CONTAINER["args"]
    ],
)
"""The runtime's container as KServe starts it for the example InferenceService (``{{.Name}}`` filled in)."""
TFAAS_CONFIG_DIR = next(m["mountPath"] for m in TFAAS["volumeMounts"] if m["name"] == "config")


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (item,) = [item for item in items if item["name"] == name]
    return item


def quantity(value: str) -> float:
    """A Kubernetes resource quantity as a number (bytes, or cores): ``3Gi``, ``512Mi``, ``500m``, ``2``."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value).groups()
    return float(number) * units.get(unit, 1)


def image_env() -> dict[str, str]:
    """The ``ENV`` values of the image (the Dockerfile's ``KEY=value`` settings)."""
    return dict(re.findall(r"^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$", (REPO / "Dockerfile").read_text(), re.M))


def settings_of(container: dict[str, Any], mounts: dict[str, Path]) -> tuple[Settings, list[str]]:
    """The container's tfaas settings as its command line and environment give them, and the arguments
    tfaas does not know. ``mounts`` maps a container path to a local directory holding its files."""
    args = list(container["args"])
    for mount_path, local in mounts.items():
        args = [arg.replace(mount_path, str(local)) for arg in args]
    parsed, unknown = build_parser().parse_known_args(["serve", *args])
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    return load_settings(parsed, environ=env), unknown


@pytest.fixture
def config_mount(tmp_path: Path) -> dict[str, Path]:
    """The ConfigMap's files in a local directory, for the container path it is mounted at."""
    for key, text in K8S["ConfigMap"]["data"].items():
        (tmp_path / key).write_text(text)
    volume = by_name(POD["spec"]["volumes"], "config")
    assert volume["configMap"]["name"] == K8S["ConfigMap"]["metadata"]["name"]
    return {TFAAS_CONFIG_DIR: tmp_path}


# ---- the objects are what Kubernetes and KServe accept ------------------------------------------------


def test_each_kustomization_lists_every_manifest_of_its_directory():
    for directory in (KUBERNETES_DIR, KSERVE_DIR):
        manifests = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert sorted(kustomization(directory)["resources"]) == sorted(manifests), directory
    component = kustomization(OBJECT_STORAGE)
    assert component["kind"] == "Component"
    assert all((OBJECT_STORAGE / patch["path"]).is_file() for patch in component["patches"])
    assert set(K8S) == {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }


@pytest.mark.parametrize("kind", sorted(K8S))
def test_kubernetes_objects_validate_against_kubernetes_schemas(kind):
    kubernetes_validate.validate(K8S[kind], SCHEMA_VERSION, strict=True)


def test_the_object_storage_component_makes_a_valid_pod(config_mount):
    """The pod the component makes (its init container, the claim's volume replaced) validates, and the init
    container fills, in the volume tfaas reads models from, the base path of every configured model."""
    (patch,) = load_documents(OBJECT_STORAGE / "models-from-object-storage.yaml")
    (deleted,) = load_documents(OBJECT_STORAGE / "no-shared-volume.yaml")
    assert deleted["$patch"] == "delete"
    assert (deleted["kind"], deleted["metadata"]["name"]) == ("PersistentVolumeClaim", "tfaas-models")
    assert by_name(POD["spec"]["volumes"], "models")["persistentVolumeClaim"]["claimName"] == "tfaas-models"

    spec = patch["spec"]["template"]["spec"]
    (models_volume,) = spec["volumes"]
    volume = {key: value for key, value in models_volume.items() if value is not None}  # `null`: removed
    volumes = [volume if v["name"] == volume["name"] else v for v in POD["spec"]["volumes"]]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tfaas", "labels": POD["metadata"]["labels"]},
        "spec": {**POD["spec"], "initContainers": spec["initContainers"], "volumes": volumes},
    }
    kubernetes_validate.validate(pod, SCHEMA_VERSION, strict=True)

    (fetch,) = spec["initContainers"]
    models_mount = by_name(TFAAS["volumeMounts"], "models")["mountPath"]
    assert by_name(fetch["volumeMounts"], "models")["mountPath"] == models_mount
    sources, destinations = fetch["args"][0::2], fetch["args"][1::2]
    assert all(re.match(r"[a-z0-9]+://", source) for source in sources)
    config_file = config_mount[TFAAS_CONFIG_DIR] / "models.config"
    assert sorted(destinations) == sorted(m.base_path for m in read_model_config_file(str(config_file)))


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    """The Python of a venv with KServe's SDK, made once per machine, Python and pinned versions.

    It is built under a temporary name and renamed into place when complete, so a build cut short is
    never taken for a venv, and two sessions building at once both end up with the same one.
    """
    tag = f"kserve-{KSERVE_VERSION}-kubernetes-{KUBERNETES_CLIENT_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    root = Path(tempfile.gettempdir()) / f"tfaas-tests-{tag}"
    python = root / "bin" / "python"
    if root.exists() and not _imports_kserve(python):
        shutil.rmtree(root)
    if not root.exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.building-", dir=root.parent))
        try:
            _run([sys.executable, "-m", "venv", "--clear", str(staging)], timeout=120)
            pins = [f"kserve=={KSERVE_VERSION}", f"kubernetes=={KUBERNETES_CLIENT_VERSION}"]
            pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
            _run([*pip, "--quiet", *pins], timeout=900)
            with contextlib.suppress(OSError):  # NOTE: another session put its venv there first: as good
                staging.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    assert _imports_kserve(python), f"{python} cannot import kserve"
    return python


def _clean_env() -> dict[str, str]:
    """This environment without what would make another venv's Python see this one's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


def _imports_kserve(python: Path) -> bool:
    if not python.exists():
        return False
    code = f"import kserve, kubernetes; assert kubernetes.__version__ == {KUBERNETES_CLIENT_VERSION!r}"
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120, env=_clean_env()).returncode == 0


def test_kserve_objects_are_read_by_kserve_models(kserve_python):
    """Every field is one the KServe SDK's models know, and none they require is missing."""
    objects = list(KSERVE.values())
    done = subprocess.run(
        [kserve_python, str(Path(__file__).with_name("kserve_models.py"))],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout)
    assert [(r["kind"], r["error"], r["unknown"]) for r in reports] == [(o["kind"], None, []) for o in objects]


# ---- what they say about tfaas is true of tfaas ------------------------------------------------------


def tfaas_get_routes() -> set[str]:
    """The paths tfaas answers GET on, from its own OpenAPI document."""
    document = yaml.safe_load(resources.files("tfaas.server").joinpath("openapi.yaml").read_text())
    return {path for path, operations in document["paths"].items() if "get" in operations}


def test_probes_and_metrics_annotations_name_tfaas_routes_on_its_rest_port(config_mount):
    routes = tfaas_get_routes()
    settings, _ = settings_of(TFAAS, config_mount)
    rest_port = by_name(TFAAS["ports"], "http")["containerPort"]
    assert rest_port == settings.rest_api_port
    probes = {name: TFAAS[f"{name}Probe"]["httpGet"] for name in ("startup", "readiness", "liveness")}
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startup": "/readyz",
        "readiness": "/readyz",
        "liveness": "/healthz",
    }
    assert all(probe["path"] in routes and probe["port"] == "http" for probe in probes.values())
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/monitoring/prometheus/metrics" in routes
    assert int(annotations["prometheus.io/port"]) == rest_port

    runtime = KSERVE["ServingRuntime"]["spec"]
    kserve_settings, _ = settings_of(RUNTIME_EXAMPLE, {})
    for name, path in (("readiness", "/readyz"), ("liveness", "/healthz")):
        probe = RUNTIME_CONTAINER[f"{name}Probe"]["httpGet"]
        assert (probe["path"], probe["port"]) == (path, kserve_settings.rest_api_port)
    assert runtime["annotations"]["prometheus.kserve.io/path"] == "/monitoring/prometheus/metrics"
    assert int(runtime["annotations"]["prometheus.kserve.io/port"]) == kserve_settings.rest_api_port


def test_the_config_map_holds_a_model_list_tfaas_reads(config_mount):
    config_file = config_mount[TFAAS_CONFIG_DIR] / "models.config"
    models = read_model_config_file(str(config_file))
    models_mount = by_name(TFAAS["volumeMounts"], "models")["mountPath"]
    assert [m.name for m in models] == ["half_plus_two"]
    assert all(Path(m.base_path).parent == Path(models_mount) for m in models)
    settings, _ = settings_of(TFAAS, config_mount)
    assert settings.models == models


def test_the_deployment_arguments_set_what_the_manifests_rely_on(config_mount):
    settings, _ = settings_of(TFAAS, config_mount)
    cpus = quantity(TFAAS["resources"]["requests"]["cpu"])
    assert settings.workers == cpus, "one worker per requested core (tfaas would count the node's)"
    assert settings.tensorflow_intra_op_parallelism == settings.tensorflow_inter_op_parallelism == 1
    assert settings.model_config_file_poll_wait_seconds > 0, "ConfigMap edits apply without a restart"
    pre_stop = TFAAS["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert POD["spec"]["terminationGracePeriodSeconds"] > int(pre_stop[1]) + settings.graceful_timeout
    assert "--graceful_timeout=30" in TFAAS["args"], "passed explicitly, not left to the default"


def test_the_kserve_runtime_starts_tfaas_with_exactly_kserve_arguments():
    assert RUNTIME_CONTAINER["args"] == KSERVE_TF_SERVING_ARGS
    assert "command" not in RUNTIME_CONTAINER, "the image's entrypoint passes the arguments on"
    settings, _ = settings_of(RUNTIME_EXAMPLE, {})
    assert [(m.name, m.base_path) for m in settings.models] == [("half-plus-two", "/mnt/models")]
    assert settings.rest_api_port == 8080
    assert settings.workers == quantity(RUNTIME_CONTAINER["resources"]["requests"]["cpu"]) == 1


@pytest.mark.parametrize("container", [TFAAS, RUNTIME_EXAMPLE], ids=["deployment", "servingruntime"])
def test_every_container_argument_is_a_tfaas_option(container, config_mount):
    """tfaas ignores (with a warning) the TF Serving flags it does not have: here each must be one it has."""
    _, unknown = settings_of(container, config_mount)
    assert unknown == [], f"tfaas does not know {unknown}"


def test_the_kserve_runtime_serves_tensorflow_over_every_protocol_and_the_example_uses_it():
    runtime = KSERVE["ServingRuntime"]
    formats = runtime["spec"]["supportedModelFormats"]
    assert [(f["name"], f["version"], f["autoSelect"]) for f in formats] == [
        ("tensorflow", "1", True),
        ("tensorflow", "2", True),
    ]
    assert runtime["spec"]["protocolVersions"] == ["v1", "v2", "grpc-v1", "grpc-v2"]
    assert RUNTIME_CONTAINER["name"] == "kserve-container"
    service = KSERVE["InferenceService"]
    model = service["spec"]["predictor"]["model"]
    assert (model["runtime"], model["modelFormat"]["name"]) == (runtime["metadata"]["name"], "tensorflow")
    assert service["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"


# ---- the pod runs as the restricted Pod Security Standard asks, within its memory ---------------------


@pytest.mark.parametrize(
    ("container", "volumes"),
    [(TFAAS, POD["spec"]["volumes"]), (RUNTIME_CONTAINER, KSERVE["ServingRuntime"]["spec"]["volumes"])],
    ids=["deployment", "servingruntime"],
)
def test_containers_run_unprivileged_on_a_read_only_root_with_emptydirs_where_tfaas_writes(container, volumes):
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}, "no NET_ADMIN (the SYN filter's trade-off)"
    writable = {m["mountPath"]: m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert all("emptyDir" in by_name(volumes, name) for name in writable.values())
    env = image_env()
    assert env["TMPDIR"] == env["TFAAS_WORKER_TMP_DIR"] == "/dev/shm" in writable


def test_memory_limit_covers_tfaas_estimate_for_its_workers(config_mount):
    """At least tfaas's own estimate for the workers with a small model held twice (a swap), and Guaranteed."""
    resources_ = TFAAS["resources"]
    assert resources_["requests"] == resources_["limits"]
    settings, _ = settings_of(TFAAS, config_mount)
    per_worker = worker_count.WORKER_BASELINE_BYTES + 2 * worker_count.VERSION_OVERHEAD_BYTES
    floor = settings.workers * per_worker + worker_count.SHARED_LIBRARY_BYTES
    assert quantity(resources_["limits"]["memory"]) >= floor + 100 * MIB  # the master and the coordinator


def test_the_service_autoscaler_and_disruption_budget_point_at_the_deployment():
    labels = POD["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in DEPLOYMENT["spec"], "the autoscaler owns the count"
    service = K8S["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in TFAAS["ports"]}
    assert {(p["name"], p["port"], p["targetPort"]) for p in service["ports"]} == {
        ("http", 8501, "http"),
        ("grpc", 8500, "grpc"),
    }
    assert ports == {"http": 8501, "grpc": 8500}
    hpa = K8S["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"]) == (
        "Deployment",
        DEPLOYMENT["metadata"]["name"],
    )
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    pdb = K8S["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["minReplicas"] - pdb["maxUnavailable"] >= 1, "a drain leaves a replica serving"
    claim = K8S["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert by_name(POD["spec"]["volumes"], "models")["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"],
        "readOnly": True,
    }
    assert by_name(TFAAS["volumeMounts"], "models")["readOnly"] is True
