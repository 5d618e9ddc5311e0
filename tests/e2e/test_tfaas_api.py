"""TFaaS's API end to end: the curl commands of TFaaS's documents, its protobuf client, safe uploads:
writes off by default, bombs refused with the disk they take bounded, uploads racing deletes."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.server import ServerProcess, wait_for
from tests.servables.tfaas_models import (
    FROZEN_LABELS,
    NOT_AN_IMAGE,
    frozen_graph_expected,
    png_bytes,
    write_frozen_graph,
    write_image_model,
)
from tfaas.protos import tfaas_pb2
from tfaas.servables.model_params import ModelParams

pytestmark = pytest.mark.e2e

VALUES = [1.0, 2.0, 3.0, 4.0]
MAX_UPLOAD = 2_000_000


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """The user's files, as the TFaaS documents name them: params.json, model.pb, labels.txt, a bundle."""
    path = tmp_path_factory.mktemp("path")
    write_frozen_graph(path / "vk", name="vk", model_file="model.pb")
    for name in ("params.json", "model.pb", "labels.txt"):
        (path / name).write_bytes((path / "vk" / name).read_bytes())
    write_image_model(path / "model", name="model")
    subprocess.run(["tar", "cfz", "model.tar.gz", "model"], cwd=path, check=True)
    (path / "input.json").write_text(json.dumps({"keys": ["a", "b", "c", "d"], "values": VALUES, "model": "vk"}))
    (path / "file.png").write_bytes(png_bytes())
    return path


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory) -> ServerProcess:
    repo = tmp_path_factory.mktemp("repo")
    # NOTE: two workers: an upload must reach the models of every worker, each watching the repository.
    return start_server(
        "--model_repository",
        str(repo),
        "--max_upload_bytes",
        str(MAX_UPLOAD),
        "--workers",
        "2",
        "--enable_model_management",
    )


def wait_served(server: ServerProcess, model: str, image: bool = False) -> None:
    """Wait until every answer succeeds for 3 s on end: longer than a worker takes to see a new model.

    Which worker takes a new connection is not ours to choose, so a run of successes alone could all come
    from one worker; 3 s covers the other worker's repository poll (0.5 s) and its load.
    """

    def ok() -> bool:
        if image:
            return server.post("/image", data={"model": model}, files={"image": ("f.png", png_bytes())}).ok
        return server.post("/json", json={"values": VALUES, "model": model}).ok

    def ok_for_3_seconds() -> bool:
        end = time.monotonic() + 3.0
        return all(ok() for _ in iter(lambda: time.monotonic() < end, False))

    wait_for(ok_for_3_seconds, timeout=60)


def curl(command: str, server: ServerProcess, cwd: Path) -> str:
    """Run a curl command from TFaaS's documents, with their host replaced by the test server's."""
    command = command.replace("https://cms-tfaas.cern.ch", server.url).replace("/path/", f"{cwd}/")
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def repository(server: ServerProcess) -> Path:
    return Path(server.process.args[server.process.args.index("--model_repository") + 1])


def test_documented_curl_commands(server, files):
    curl(
        "curl -s -X POST https://cms-tfaas.cern.ch/upload -F 'name=vk' -F 'params=@/path/params.json' "
        "-F 'model=@/path/model.pb' -F 'labels=@/path/labels.txt'",
        server,
        files,
    )
    curl(
        'curl -X POST -H "Content-Encoding: gzip" -H "content-type: application/octet-stream" '
        "--data-binary @/path/model.tar.gz https://cms-tfaas.cern.ch/upload",
        server,
        files,
    )
    wait_served(server, "vk")
    wait_served(server, "model", image=True)

    answer = json.loads(
        curl(
            'curl -s -X POST -H "Content-type: application/json" -d@/path/input.json https://cms-tfaas.cern.ch/json',
            server,
            files,
        )
    )
    assert answer == pytest.approx(frozen_graph_expected(VALUES).tolist())

    image = json.loads(
        curl("curl https://cms-tfaas.cern.ch/image -F 'image=@/path/file.png' -F 'model=model'", server, files)
    )
    assert image["labels"][0]["label"] == "red"
    assert [entry["label"] for entry in image["labels"]] == ["red", "green", "blue"]

    def listing_once_both_serve() -> dict[str, dict] | None:
        listed = {m["name"]: m for m in json.loads(curl("curl https://cms-tfaas.cern.ch/models", server, files))}
        return listed if all(listed.get(name, {}).get("version") == 1 for name in ("vk", "model")) else None

    # NOTE: each worker lists what it serves, and the worker that answers may still be loading a model.
    listed = wait_for(listing_once_both_serve, timeout=30)
    assert listed["vk"]["input_node"] == "dense_1_input" and listed["vk"]["state"] == "AVAILABLE"
    assert listed["model"]["img_channels"] == 3
    assert set(listed["vk"]) >= set(ModelParams().to_json_dict()), "all of TFaaS's params keys"

    curl("curl -s -X DELETE https://cms-tfaas.cern.ch/delete -F 'model=model'", server, files)
    wait_for(lambda: server.post("/json", json={"values": VALUES, "model": "model"}).status_code == 404, 15)
    assert not (repository(server) / "model").exists()
    time.sleep(1.0)  # NOTE: both workers' sources have seen the base path go (poll: 0.5 s)
    removed = repository(server) / "model"
    assert [line for line in server.log().splitlines() if f"{removed} " in line and "[ERROR]" in line] == []


def test_protobuf_client(server, files):
    wait_served(server, "vk")
    row = tfaas_pb2.Row(key=["a", "b", "c", "d"], value=VALUES, model="vk")
    response = server.post("/proto", data=row.SerializeToString())
    assert response.status_code == 200, response.text
    predictions = tfaas_pb2.Predictions.FromString(response.content)
    assert [c.label for c in predictions.prediction] == FROZEN_LABELS
    assert [c.probability for c in predictions.prediction] == pytest.approx(frozen_graph_expected(VALUES).tolist())
    garbage = server.post("/predict/proto", data=b"\xff\xff\xff")
    assert garbage.status_code == 400 and "error" in garbage.json()


def test_upload_after_upload_under_load_fails_nothing(server, files):
    wait_served(server, "vk")
    expected = pytest.approx(frozen_graph_expected(VALUES).tolist())
    failures: list[str] = []
    answers: list[list[float]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(f"{server.url}/predict/json", json={"values": VALUES, "model": "vk"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    answers.append(response.json())

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for version in (2, 3, 4):
            upload = server.post(
                "/upload",
                data={"name": "vk"},
                files={
                    field: (name, (files / name).read_bytes())
                    for field, name in (("params", "params.json"), ("model", "model.pb"), ("labels", "labels.txt"))
                },
            )
            assert upload.json() == {"name": "vk", "version": version}, upload.text
            server.wait_available("vk", version, timeout=15)
    finally:
        stop.set()
        thread.join(30)
    assert failures == []
    assert len(answers) > 10 and all(a == expected for a in answers)


def bundle(members: dict[str, bytes | str]) -> bytes:
    """A tar.gz of files (bytes) and symlinks (a str target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


BAD_UPLOADS = [
    ("parent escape", {"../../etc/x": b"owned"}, 400),
    ("absolute path", {"/etc/x": b"owned"}, 400),
    ("symlink", {"evil/saved_model.pb": b"x", "evil/link": "/etc/passwd"}, 400),
    ("oversized", {"big/saved_model.pb": b"\0" * (MAX_UPLOAD + 1)}, 413),
]


@pytest.mark.parametrize("members,status", [c[1:] for c in BAD_UPLOADS], ids=[c[0] for c in BAD_UPLOADS])
def test_malicious_and_oversized_bundles_write_nothing(server, members, status):
    before = sorted(p.name for p in repository(server).iterdir())
    response = server.post(
        "/upload",
        data=bundle(members),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert sorted(p.name for p in repository(server).iterdir()) == before
    assert server.process.poll() is None


def test_oversized_request_body_is_413(server):
    response = server.post("/upload", data=b"\0" * (MAX_UPLOAD + 10), headers={"Content-Type": "application/x-tar"})
    assert response.status_code == 413 and response.json()["error"]


def test_bad_params_and_bad_image(server, files):
    wait_served(server, "vk")
    before = sorted(p.name for p in (repository(server) / "vk").iterdir())
    upload = server.post(
        "/upload",
        data={"name": "vk"},
        files={"params": ("params.json", b"{not json"), "model": ("model.pb", (files / "model.pb").read_bytes())},
    )
    assert upload.status_code == 400 and upload.json()["error"]
    assert sorted(p.name for p in (repository(server) / "vk").iterdir()) == before
    image = server.post("/image", data={"model": "vk"}, files={"image": ("file.png", NOT_AN_IMAGE)})
    assert image.status_code == 400 and "Invalid image" in image.json()["error"]
    assert server.post("/json", json={"values": VALUES, "model": "vk"}).status_code == 200


def test_start_warns_that_anyone_may_change_models(server):
    warnings = [line for line in server.log().splitlines() if "[WARNING]" in line and "admin_token" in line]
    assert len(warnings) == 1, "logged once, by the master"
    assert f"anyone who can reach port {server.port} may upload, delete or change models" in warnings[0]


def test_plain_tfaas_serve_refuses_writes(start_server, half_plus, tmp_path):
    """``tfaas serve`` with no flag at all: the example models are served, and nobody may delete them."""
    examples = tmp_path / "examples"
    for name in ("half_plus_two", "dense42"):
        shutil.copytree(half_plus(2.0), examples / name / "1")
    plain = start_server(env={"TFAAS_EXAMPLES_DIR": str(examples)})
    plain.wait_available("half_plus_two", 1)
    before = sorted(str(p.relative_to(examples)) for p in examples.rglob("*"))
    answers = [
        requests.delete(f"{plain.url}/delete/half_plus_two", timeout=30),
        requests.delete(f"{plain.url}/delete", data={"model": "dense42"}, timeout=30),
        plain.post("/upload", data={"name": "x"}, files={"params": ("params.json", b"{}"), "model": ("m.pb", b"g")}),
        plain.post("/upload", data=bundle({"x/saved_model.pb": b"g"}), headers={"Content-Encoding": "gzip"}),
        plain.post("/params", json={"name": "dense42"}),
    ]
    for answer in answers:
        assert answer.status_code == 403 and answer.headers["Content-Type"] == "application/json"
        assert "--enable_model_management" in answer.json()["error"]
    assert sorted(str(p.relative_to(examples)) for p in examples.rglob("*")) == before
    assert plain.post("/v1/models/half_plus_two:predict", json={"instances": [[1.0]]}).json() == {
        "predictions": [[2.5]]
    }
    assert "admin_token" not in plain.log(), "no warning: nobody may write"


def disk_use(root: Path) -> int:
    """Bytes the files and directories under ``root`` take on disk (what ``du`` counts)."""
    total = 0
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            with contextlib.suppress(FileNotFoundError):  # NOTE: removed while we walked
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def upload_sampling_disk_use(server: ServerProcess, body: bytes, headers: dict[str, str]) -> tuple[int, int]:
    """Upload ``body`` while a thread samples the repository's disk use; ``(status, peak bytes it added)``."""
    root, done = repository(server), threading.Event()
    baseline = disk_use(root)
    peak = [baseline]

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], disk_use(root))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = server.post("/upload", data=body, headers={"Content-Type": "application/octet-stream", **headers})
    finally:
        done.set()
        sampler.join()
    assert response.headers["Content-Type"] == "application/json" and response.json()["error"], response.text
    return response.status_code, peak[0] - baseline


def sparse_bundle(tmp_path: Path) -> bytes:
    """A 10 KB GNU tar (``tar --sparse``) whose ``sparse/saved_model.pb`` is 1 GiB: all of it a hole."""
    (tmp_path / "sparse").mkdir()
    with open(tmp_path / "sparse" / "saved_model.pb", "wb") as hole:
        hole.truncate(1 << 30)
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", "sparse.tar", "sparse"], cwd=tmp_path, check=True)
    return (tmp_path / "sparse.tar").read_bytes()


def zeros_bundle(sizes: list[int]) -> bytes:
    """A tar.gz of ``bomb/zeros<i>`` files of zeros, about 1 KB per MiB: gzip members, one per MiB of zeros
    (a valid gzip stream, built without compressing a gigabyte)."""
    mib = gzip.compress(bytes(1 << 20))
    parts = []
    for i, size in enumerate(sizes):
        info = tarfile.TarInfo(f"bomb/zeros{i}")
        info.size = size
        parts += [gzip.compress(info.tobuf(tarfile.GNU_FORMAT)), mib * (size >> 20), gzip.compress(bytes(-size % 512))]
    return b"".join(parts) + gzip.compress(bytes(1024))


BOMBS = [
    ("sparse tar: a 1 GiB member in 10 KB", lambda tmp_path: (sparse_bundle(tmp_path), {})),
    ("gzip bomb: a 1 GiB member in 1 MB", lambda tmp_path: (zeros_bundle([1 << 30]), {"Content-Encoding": "gzip"})),
    ("gzip bomb: 64 members of 1 MiB", lambda tmp_path: (zeros_bundle([1 << 20] * 64), {"Content-Encoding": "gzip"})),
]


@pytest.mark.parametrize("make", [b[1] for b in BOMBS], ids=[b[0] for b in BOMBS])
def test_bombs_are_refused_and_the_disk_they_take_stays_under_the_limit(server, tmp_path, make):
    body, headers = make(tmp_path)
    assert len(body) < MAX_UPLOAD
    before = sorted(p.name for p in repository(server).iterdir())
    status, peak = upload_sampling_disk_use(server, body, headers)
    assert status == 413
    assert peak <= MAX_UPLOAD
    assert sorted(p.name for p in repository(server).iterdir()) == before


def test_uploads_racing_deletes_succeed_or_conflict(server, files):
    """40 rounds of an upload (form or bundle) and a delete of the same model at once, across 2 workers."""
    params = json.dumps({**json.loads((files / "params.json").read_text()), "name": "racer"}).encode()
    graph = (files / "model.pb").read_bytes()
    form = {"params": ("params.json", params), "model": ("model.pb", graph)}
    bundled = bundle({"racer/params.json": params, "racer/model.pb": graph})

    def upload(round_: int) -> int:
        if round_ % 2:
            return server.post("/upload", data={"name": "racer"}, files=form).status_code
        return server.post("/upload", data=bundled, headers={"Content-Encoding": "gzip"}).status_code

    def delete() -> int:
        return requests.delete(f"{server.url}/delete/racer", timeout=30).status_code

    seen: Counter[str] = Counter()
    with ThreadPoolExecutor(2) as pool:
        for round_ in range(40):
            if round_ % 3 == 0:
                upload(round_)  # NOTE: a model to delete, most rounds
            uploaded, deleted = pool.submit(upload, round_), pool.submit(delete)
            seen[f"upload {uploaded.result()}"] += 1
            seen[f"delete {deleted.result()}"] += 1
    assert set(seen) <= {"upload 200", "upload 409", "delete 200", "delete 404"}, seen
    assert seen["upload 200"] > 0 and seen["delete 200"] > 0, seen
    leftovers = [p.name for p in repository(server).iterdir() if p.name.startswith((".upload-", ".deleted-"))]
    assert leftovers == [], "no staging, no trash"
    racer = repository(server) / "racer"
    if racer.exists():
        assert all(re.fullmatch(r"[0-9]+", p.name) for p in racer.iterdir())
        assert all((v / "model.pb").is_file() and (v / "params.json").is_file() for v in racer.iterdir())


def test_an_upload_that_cannot_load_says_why_in_its_status(server):
    upload = server.post(
        "/upload", data=bundle({"broken/saved_model.pb": b"not a graph"}), headers={"Content-Encoding": "gzip"}
    )
    assert upload.json() == {"name": "broken", "version": 1}

    def status_error() -> str:
        versions = server.get("/v1/models/broken").json().get("model_version_status", [])
        return versions[0]["status"]["error_message"] if versions else ""

    assert wait_for(status_error, timeout=30)
    listed = wait_for(lambda: [m for m in server.get("/models").json() if m["name"] == "broken" and m["error"]], 30)
    assert listed[0]["version"] is None and listed[0]["state"] != "AVAILABLE"
    assert requests.delete(f"{server.url}/delete/broken", timeout=30).status_code == 200
