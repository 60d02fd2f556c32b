"""Models that travel: a version exported by one service, imported by another over another data
dir, answers the same; an archive that is not ours or is damaged is a 422 (too large: 413)
that leaves the registry as it was; the CLI does the same on a data dir."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from app import archive
from app.cli import main
from app.registry import STAGING_PREFIX
from app.settings import Limits, Settings
from app.tar_stream import stream_chunks, stream_size
from models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import TokenizerConfig
from models.vocab import Vocab
from tests.app.conftest import start_client
from tests.app.service_process import ServiceProcess
from tests.conftest import REPO_ROOT

TAR = {"content-type": "application/x-tar"}
TEXTS = ["我爱学习自然语言处理", "我爱机器学习", "我爱自然语言处理", "机器学习很有趣"]
MODEL = {
    "name": "travel",
    "texts": TEXTS,
    "embedding_dim": 8,
    "hidden_size": 8,
    "cell": "lstm",
    "seed": 0,
}
TRAIN = {
    "model": "travel",
    "texts": TEXTS * 8,
    "seq_len": 4,
    "batch_size": 4,
    "epochs": 2,
    "val_fraction": 0.25,
    "seed": 0,
    "wait": True,
}
# The same requests to the origin and to a copy: every answer but its version must be equal.
QUESTIONS = [
    ("/predict", {"model": "travel", "text": "我爱", "k": 5}),
    ("/predict", {"model": "travel", "texts": ["我爱学习", "机器"], "k": 3}),
    ("/score", {"model": "travel", "texts": ["我爱自然语言处理", "学习我爱"]}),
    ("/embed", {"model": "travel", "texts": ["我爱学习", "自然语言处理很有趣"]}),
    ("/generate", {"model": "travel", "prompt": "我爱", "max_tokens": 6, "seed": 3}),
]


def started(data_dir: Path, **settings: Any) -> TestClient:
    values = {"create_demo_model": False, **settings}
    return start_client(Settings(data_dir=data_dir, device="cpu", **values))


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A service whose model ``travel`` has version 1 (made) and version 2 (trained)."""
    client = started(tmp_path_factory.mktemp("origin"))
    assert client.post("/models", json=MODEL).status_code == 201
    trained = client.post("/train", json=TRAIN)
    assert trained.status_code == 200, trained.text
    assert trained.json()["status"] == "succeeded"
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def exported(origin: TestClient) -> bytes:
    response = origin.get("/models/travel/versions/2/export")
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("target")


@pytest.fixture(scope="module")
def target(target_dir: Path, exported: bytes) -> Iterator[TestClient]:
    """Another service, over another data dir, that imported ``travel`` once."""
    client = started(target_dir)
    assert client.post("/models/import", content=exported, headers=TAR).status_code == 201
    yield client
    client.__exit__(None, None, None)


def answers(client: TestClient) -> list[dict[str, Any]]:
    found = []
    for path, body in QUESTIONS:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        found.append({key: value for key, value in response.json().items() if key != "version"})
    return found


def registry_state(client: TestClient, data_dir: Path) -> tuple[Any, ...]:
    """What a refused import must leave as it was: the models, their versions, the files."""
    models = client.get("/models").json()["models"]
    described = [(m["name"], m["versions"], m["metrics"], m["source"]) for m in models]
    return described, sorted(path.name for path in (data_dir / "models").iterdir())


# -- a round trip between two services ------------------------------------------------------


def test_an_imported_version_answers_as_its_origin(origin, target, target_dir, exported):
    info = target.get("/models/travel").json()
    assert info["versions"] == [1]
    origin_info = origin.get("/models/travel", params={"version": 2}).json()
    for same in ("config", "tokenizer", "vocab_size", "specials", "num_parameters", "metrics"):
        assert info[same] == origin_info[same], same
    assert info["metrics"]["val_perplexity"] > 0  # a trained version's metrics travelled
    assert info["source"]["kind"] == "import"
    (origin_version,) = [
        v for v in origin.get("/models/travel/versions").json() if v["version"] == 2
    ]
    assert info["source"]["origin"] == {
        "name": "travel",
        "version": 2,
        "created_at": origin_version["created_at"],
        "source": origin_version["source"],
    }
    assert (
        info["source"]["archive_sha256"]
        == hashlib.sha256(member(exported, "manifest.json")).hexdigest()
    )
    assert answers(target) == answers(origin)  # the origin's latest is version 2


def test_an_import_answers_201_with_the_model_and_names_it(target_dir, exported):
    client = started(target_dir.parent / "fresh")
    try:
        response = client.post("/models/import", content=exported, headers=TAR)
        assert response.status_code == 201, response.text
        assert response.headers["Seqlab-Model"] == "travel@1"
        assert response.headers["Location"] == "/models/travel"
        assert response.json() == client.get("/models/travel").json()
        again = client.post(
            "/models/import",
            params={"name": "copy"},
            content=exported,
            headers={"content-type": "application/octet-stream"},
        )
        assert again.status_code == 201, again.text
        assert again.headers["Seqlab-Model"] == "copy@1"
        next_version = client.post("/models/import", content=exported, headers=TAR)
        assert next_version.status_code == 201
        assert next_version.headers["Seqlab-Model"] == "travel@2"
        assert client.get("/models/travel").json()["versions"] == [1, 2]
    finally:
        client.__exit__(None, None, None)


def test_an_export_is_a_plain_tar_named_for_its_version_and_the_same_every_time(origin, exported):
    response = origin.get("/models/travel/versions/2/export")
    assert response.headers["content-type"] == "application/x-tar"
    assert response.headers["content-disposition"] == 'attachment; filename="travel-v2.seqlab"'
    assert response.headers["seqlab-model"] == "travel@2"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content == exported  # deterministic: one version, one archive
    manifest_bytes = member(exported, "manifest.json")
    assert response.headers["etag"] == f'"{hashlib.sha256(manifest_bytes).hexdigest()}"'
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:  # any tar tool reads it
        assert tar.getnames() == ["manifest.json", "checkpoint.json", "model.safetensors"]
        assert all(item.isreg() for item in tar.getmembers())
    manifest = json.loads(manifest_bytes)
    assert manifest["format"] == "seqlab-model"
    assert manifest["format_version"] == 1
    assert (manifest["name"], manifest["version"]) == ("travel", 2)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        data = member(exported, name)
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    checkpoint = json.loads(member(exported, CONFIG_FILE))
    assert manifest["model"] == checkpoint["model"]
    assert manifest["tokenizer"] == checkpoint["tokenizer"]


def test_export_of_an_unknown_model_or_version_is_404(origin):
    for path in ("/models/nowhere/versions/1/export", "/models/travel/versions/9/export"):
        response = origin.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert origin.get("/models/travel/versions/0/export").status_code == 422


def test_the_create_flag_and_names_answer_as_elsewhere(target, target_dir, exported):
    before = registry_state(target, target_dir)
    taken = target.post("/models/import", params={"create": "true"}, content=exported, headers=TAR)
    assert taken.status_code == 409
    assert taken.json()["type"] == "urn:seqlab:problem:conflict"
    missing = target.post(
        "/models/import",
        params={"name": "other", "create": "false"},
        content=exported,
        headers=TAR,
    )
    assert missing.status_code == 404
    assert "other" in missing.json()["detail"]
    invalid = target.post(
        "/models/import", params={"name": "Bad Name"}, content=exported, headers=TAR
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "query.name"
    assert registry_state(target, target_dir) == before


def test_a_body_that_is_not_labelled_as_an_archive_is_415(target, exported):
    for headers in ({"content-type": "application/json"}, {}):
        response = target.post("/models/import", content=exported, headers=headers)
        assert response.status_code == 415
        assert response.json()["type"] == "urn:seqlab:problem:unsupported-media-type"


def test_the_import_path_allows_what_the_spec_says(target):
    # A concrete path before the template /models/{name}, as OpenAPI matches them.
    response = target.put("/models/import", content=b"")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


# -- archives that are not ours or are damaged ----------------------------------------------


def member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


def pack(members: list[tuple[tarfile.TarInfo | str, bytes]]) -> bytes:
    """A tar written by the standard library, as another tool would."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            if isinstance(info, str):
                info = tarfile.TarInfo(info)
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def repacked(
    exported: bytes,
    manifest_change: Callable[[dict[str, Any]], None] = lambda manifest: None,
    checkpoint_change: Callable[[dict[str, Any]], None] | None = None,
) -> bytes:
    """The archive with its manifest (and checkpoint.json) changed and its checksums recomputed:
    a consistent archive, so that only the change is wrong."""
    checkpoint = member(exported, CONFIG_FILE)
    if checkpoint_change is not None:
        document = json.loads(checkpoint)
        checkpoint_change(document)
        checkpoint = json.dumps(document).encode()
    weights = member(exported, WEIGHTS_FILE)
    manifest = json.loads(member(exported, "manifest.json"))
    for name, data in ((CONFIG_FILE, checkpoint), (WEIGHTS_FILE, weights)):
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest_change(manifest)
    return pack(
        [
            ("manifest.json", json.dumps(manifest).encode()),
            (CONFIG_FILE, checkpoint),
            (WEIGHTS_FILE, weights),
        ]
    )


def flipped(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def weights_offset(exported: bytes) -> int:
    """Where the weights' data starts in the archive (past two members and three headers)."""
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        return tar.getmember(WEIGHTS_FILE).offset_data


def pickled_model() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2, 2)}, buffer)  # what a renamed .pt file holds
    return buffer.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def bigger_hidden_size(document: dict[str, Any]) -> None:
    document["model"]["hidden_size"] += 1  # the weights were made for the smaller one


def manifest_of(exported: bytes) -> bytes:
    return member(exported, "manifest.json")


# (case id, how the bad archive is made from a good one, its ``reason``, words of its detail)
BAD_ARCHIVES: list[tuple[str, Callable[[bytes], bytes], str, str]] = [
    ("empty", lambda good: b"", "not-an-archive", "empty"),
    ("plain-text", lambda good: "我爱学习\n".encode() * 200, "not-an-archive", "not a tar"),
    ("pickled-pt-file", lambda good: pickled_model(), "not-an-archive", "not a tar"),
    ("gzipped", lambda good: gzip.compress(good), "not-an-archive", "not a tar"),
    ("truncated-in-the-weights", lambda good: good[: len(good) // 2], "truncated", WEIGHTS_FILE),
    (
        "truncated-before-the-weights",
        lambda good: good[: weights_offset(good) - 512],
        "missing-member",
        WEIGHTS_FILE,
    ),
    (
        "a-flipped-byte-in-the-weights",
        lambda good: flipped(good, weights_offset(good) + 100),
        "checksum-mismatch",
        WEIGHTS_FILE,
    ),
    (
        "a-flipped-byte-in-a-header",
        lambda good: flipped(good, weights_offset(good) - 512 + 3),
        "damaged",
        "header",
    ),
    (
        "a-foreign-tar",
        lambda good: pack([("README.md", b"# not a model\n"), ("data.csv", b"a,b\n")]),
        "foreign",
        "README.md",
    ),
    (
        "path-traversal",
        lambda good: pack([("manifest.json", manifest_of(good)), ("../../evil.sh", b"rm -rf /")]),
        "unsafe-member",
        "../../evil.sh",
    ),
    (
        "absolute-path",
        lambda good: pack([("/etc/cron.d/evil", b"* * * * * root true\n")]),
        "unsafe-member",
        "/etc/cron.d/evil",
    ),
    (
        "a-symlink-member",
        lambda good: pack(
            [("manifest.json", manifest_of(good)), (symlink(WEIGHTS_FILE, "/etc/passwd"), b"")]
        ),
        "unsafe-member",
        "not a regular file",
    ),
    (
        "a-missing-member",
        lambda good: pack(
            [("manifest.json", manifest_of(good)), (CONFIG_FILE, member(good, CONFIG_FILE))]
        ),
        "missing-member",
        WEIGHTS_FILE,
    ),
    (
        "the-manifest-not-first",
        lambda good: pack([(CONFIG_FILE, member(good, CONFIG_FILE))]),
        "damaged",
        "first member",
    ),
    (
        "format-version-2",
        lambda good: repacked(good, lambda manifest: manifest.update(format_version=2)),
        "format-version",
        "version 2",
    ),
    (
        "another-format",
        lambda good: repacked(good, lambda manifest: manifest.update(format="other-tool")),
        "foreign",
        "manifest",
    ),
    (
        "a-manifest-that-is-not-json",
        lambda good: pack([("manifest.json", b"{not json")]),
        "damaged",
        "JSON",
    ),
    (
        "a-manifest-without-checksums",
        lambda good: repacked(good, lambda manifest: manifest["files"].pop(WEIGHTS_FILE)),
        "damaged",
        "lists",
    ),
    (
        "a-config-that-does-not-fit-the-weights",
        lambda good: repacked(
            good,
            lambda manifest: bigger_hidden_size(manifest),
            checkpoint_change=bigger_hidden_size,
        ),
        "invalid-model",
        "does not load",
    ),
    (
        "a-manifest-and-checkpoint-that-disagree",
        lambda good: repacked(good, bigger_hidden_size),
        "invalid-model",
        "different models",
    ),
]


@pytest.mark.parametrize(
    ("make", "reason", "words"),
    [pytest.param(make, reason, words, id=case) for case, make, reason, words in BAD_ARCHIVES],
)
def test_a_bad_archive_is_a_422_that_changes_nothing(
    target, target_dir, exported, make, reason, words
):
    before = registry_state(target, target_dir)
    response = target.post("/models/import", content=make(exported), headers=TAR)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:seqlab:problem:invalid-input"
    assert problem["title"] == "Invalid input"
    assert problem["status"] == 422
    assert problem["reason"] == reason, problem
    assert words in problem["detail"], problem["detail"]
    assert problem["errors"][0]["field"] == "body"
    assert str(target_dir) not in problem["detail"]  # no server paths in an answer
    assert registry_state(target, target_dir) == before  # no version, no staging left behind
    assert not list(target_dir.parent.rglob("evil.sh"))


def test_an_archive_over_the_import_limit_is_a_413_also_when_streamed(tmp_path, exported):
    data_dir = tmp_path / "small"
    client = started(data_dir, limits=Limits(max_import_bytes=len(exported) - 1))
    try:
        before = registry_state(client, data_dir)
        declared = client.post("/models/import", content=exported, headers=TAR)
        streamed = client.post(
            "/models/import",
            content=(exported[i : i + 4096] for i in range(0, len(exported), 4096)),
            headers=TAR,  # chunked: no Content-Length, counted as it arrives
        )
        for response in (declared, streamed):
            assert response.status_code == 413, response.text
            problem = response.json()
            assert problem["type"] == "urn:seqlab:problem:limit-exceeded"
            assert problem["limit"] == "max_import_bytes"
            assert problem["maximum"] == len(exported) - 1
        assert registry_state(client, data_dir) == before
    finally:
        client.__exit__(None, None, None)


def test_a_model_over_the_services_limits_is_refused(tmp_path, exported):
    data_dir = tmp_path / "tight"
    client = started(data_dir, limits=Limits(max_hidden_size=4))
    try:
        response = client.post("/models/import", content=exported, headers=TAR)
        assert response.status_code == 422
        assert response.json()["limit"] == "max_hidden_size"
        assert client.get("/models").json()["models"] == []
    finally:
        client.__exit__(None, None, None)


# -- the format alone -------------------------------------------------------------------------


def test_an_archive_round_trips_its_checkpoint_files(tmp_path):
    vocab = Vocab.build([["我", "爱", "学习"]], specials=["<unk>"])
    config = LanguageModelConfig(vocab_size=len(vocab), embedding_dim=3, hidden_size=4, cell="gru")
    checkpoint = save_checkpoint(
        tmp_path / "checkpoint", RNNLanguageModel(config), vocab, TokenizerConfig()
    )
    document = json.loads((checkpoint / CONFIG_FILE).read_text(encoding="utf-8"))
    with (
        open(checkpoint / CONFIG_FILE, "rb") as config_file,
        open(checkpoint / WEIGHTS_FILE, "rb") as weights,
    ):
        files = {
            CONFIG_FILE: archive.file_entry(config_file),
            WEIGHTS_FILE: archive.file_entry(weights),
        }
        manifest = archive.manifest_bytes(
            archive.manifest_document(
                name="round",
                version=3,
                created_at="2024-01-02T03:04:05.000Z",
                metrics={"val_perplexity": 12.5},
                source={"kind": "create"},
                checkpoint=document,
                files=files,
            )
        )
        members = archive.archive_members(manifest, config_file, weights)
        data = b"".join(stream_chunks(members, mtime=1704164645))
        assert len(data) == stream_size(members)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    read = archive.read_archive(io.BytesIO(data), unpacked)
    assert (read.name, read.version, read.metrics) == ("round", 3, {"val_perplexity": 12.5})
    assert read.model == document["model"]
    assert read.digest == hashlib.sha256(manifest).hexdigest()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        assert (unpacked / name).read_bytes() == (checkpoint / name).read_bytes()
    assert sorted(path.name for path in unpacked.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


# -- the command line -------------------------------------------------------------------------


def test_the_cli_exports_and_imports_on_data_dirs(origin, tmp_path, capsys):
    origin_dir = origin.app.state.service.settings.data_dir
    archive_path = tmp_path / "travel.seqlab"
    assert main(["export", "travel@2", "-o", str(archive_path), "--data-dir", str(origin_dir)]) == 0
    assert "exported travel@2" in capsys.readouterr().err
    assert archive_path.read_bytes() == origin.get("/models/travel/versions/2/export").content
    copy_dir = tmp_path / "copy"
    assert main(["import", str(archive_path), "--name", "moved", "--data-dir", str(copy_dir)]) == 0
    assert "imported moved@1" in capsys.readouterr().err
    assert (
        main(
            [
                "import",
                str(archive_path),
                "--name",
                "moved",
                "--create",
                "--data-dir",
                str(copy_dir),
            ]
        )
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    damaged = tmp_path / "damaged.seqlab"
    damaged.write_bytes(archive_path.read_bytes()[:-2000])
    assert main(["import", str(damaged), "--data-dir", str(copy_dir)]) == 2
    assert "archive" in capsys.readouterr().err
    assert main(["export", "nowhere", "--data-dir", str(copy_dir)]) == 2
    staging = [
        path for path in (copy_dir / "models").iterdir() if path.name.startswith(STAGING_PREFIX)
    ]
    assert staging == []
    client = started(copy_dir)
    try:
        assert client.get("/models/moved").json()["versions"] == [1]
        for path, body in QUESTIONS:
            copied = client.post(path, json={**body, "model": "moved"}).json()
            original = origin.post(path, json={**body, "version": 2}).json()
            assert without_names(copied) == without_names(original)
    finally:
        client.__exit__(None, None, None)


def without_names(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in ("model", "version")}


def test_the_seqlab_command_pipes_an_export_into_an_import(origin, tmp_path):
    origin_dir = origin.app.state.service.settings.data_dir
    command = [sys.executable, "-m", "app.cli"]
    exporting = subprocess.run(
        [*command, "export", "travel", "-o", "-", "--data-dir", str(origin_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    importing = subprocess.run(
        [*command, "import", "-", "--data-dir", str(tmp_path / "piped")],
        cwd=REPO_ROOT,
        input=exporting.stdout,
        capture_output=True,
        timeout=120,
    )
    assert importing.returncode == 0, importing.stderr.decode()
    assert "imported travel@1" in importing.stderr.decode()


def test_two_real_services_move_a_model_over_http(tmp_path):
    """Through uvicorn: the export streams with its Content-Length, the import streams in."""
    origin = ServiceProcess(tmp_path / "origin").start()
    target = ServiceProcess(tmp_path / "target", {"SEQLAB_CREATE_DEMO_MODEL": "false"}).start()
    try:
        with httpx.stream("GET", f"{origin.base}/models/lesson-rnn/versions/1/export") as download:
            assert download.status_code == 200
            data = b"".join(download.iter_bytes())
        assert int(download.headers["content-length"]) == len(data)
        chunks = (data[i : i + 8192] for i in range(0, len(data), 8192))
        imported = httpx.post(f"{target.base}/models/import", content=chunks, headers=TAR)
        assert imported.status_code == 201, imported.text
        assert imported.headers["seqlab-model"] == "lesson-rnn@1"
        body = {"model": "lesson-rnn", "texts": TEXTS}
        answers = [
            httpx.post(f"{service.base}/rnn/forward", json=body).json()
            for service in (origin, target)
        ]
        assert answers[0] == answers[1]
    finally:
        origin.stop()
        target.stop()


def test_a_version_exported_on_sqlite_imports_into_a_service_on_postgresql(
    origin, exported, tmp_path, postgres_url
):
    """The other engine: the archive holds no engine's rows, only the version and its files."""
    client = started(tmp_path / "data", database_url=postgres_url)
    try:
        assert client.get("/info").json()["database"]["engine"] == "postgresql"
        before = registry_state(client, tmp_path / "data")
        damaged = flipped(exported, weights_offset(exported))
        refused = client.post("/models/import", content=damaged, headers=TAR)
        assert refused.status_code == 422
        assert refused.json()["reason"] == "checksum-mismatch"
        assert registry_state(client, tmp_path / "data") == before
        imported = client.post("/models/import", content=exported, headers=TAR)
        assert imported.status_code == 201, imported.text
        assert answers(client) == answers(origin)
        again = client.post("/models/import", content=exported, headers=TAR)
        assert again.json()["version"] == 2  # the next version of the same model
    finally:
        client.__exit__(None, None, None)
