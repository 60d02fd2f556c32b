"""Faults say what happened: a full disk, a read-only data dir, a missing GPU.

The disk faults are real: small tmpfs mounts over parts of a service's data dir (they need
root or CAP_SYS_ADMIN, and skip cleanly without).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.main import create_app
from app.settings import Limits, Settings

PROBLEM = "application/problem+json"


class Mounts:
    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, point: Path, options: str) -> None:
        point.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        self.points.append(point)

    def unmount(self, point: Path) -> None:
        subprocess.run(["umount", "-l", str(point)], check=True)
        self.points.remove(point)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    mounted = Mounts()
    yield mounted
    for point in reversed(mounted.points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_missing_gpu_is_one_line_at_start(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as stopped:
        create_app(Settings(data_dir=tmp_path / "data", device="cuda"))
    message = str(stopped.value)
    assert message.startswith("seqlab: device 'cuda' was requested")
    assert "SEQLAB_DEVICE=cpu" in message
    assert "\n" not in message


def test_an_unwritable_data_dir_is_one_line_naming_it(tmp_path, mounts):
    mounts.tmpfs(tmp_path / "readonly", "ro,size=64k")
    data_dir = tmp_path / "readonly" / "data"
    with pytest.raises(SystemExit) as stopped:
        create_app(Settings(data_dir=data_dir, device="cpu"))
    message = str(stopped.value)
    assert str(data_dir) in message
    assert "cannot be written" in message
    assert "10001" in message
    assert "\n" not in message


def test_a_full_disk_is_a_507_that_leaves_nothing_behind_and_recovers(make_client, mounts):
    client = make_client(limits=Limits(max_corpus_bytes=4_000_000))
    layout = client.app.state.service.settings.layout
    mounts.tmpfs(layout.corpora, "size=256k")
    corpus = ("我爱学习自然语言处理。\n" * 30_000).encode()  # ~1 MB: more than the device holds
    response = client.post("/corpora", content=corpus, headers={"content-type": "text/plain"})
    assert response.status_code == 507, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "urn:seqlab:problem:insufficient-storage"
    assert "no space left" in body["detail"]
    assert list(layout.corpora.iterdir()) == []  # no .partial left behind
    assert client.get("/corpora").json()["corpora"] == []
    mounts.unmount(layout.corpora)
    again = client.post("/corpora", content=corpus, headers={"content-type": "text/plain"})
    assert again.status_code == 201, again.text


def test_a_full_models_dir_publishes_nothing(make_client, mounts):
    client = make_client()
    layout = client.app.state.service.settings.layout
    mounts.tmpfs(layout.models, "size=4k")
    body = {"name": "full", "texts": ["我爱学习自然语言处理"] * 50, "hidden_size": 256}
    response = client.post("/models", json=body)
    assert response.status_code == 507, response.text
    assert client.get("/models/full").status_code == 404
    mounts.unmount(layout.models)
    assert client.post("/models", json=body).status_code == 201


def test_a_read_only_data_dir_is_not_ready_and_says_why(make_client, mounts, tmp_path):
    client = make_client()
    root: Path = client.app.state.service.settings.layout.root
    assert client.get("/ready").status_code == 200
    mounts.tmpfs(root, "ro,size=64k")
    client.app.state.service._storage_checked_at = -1e9  # no waiting for the next probe
    response = client.get("/ready")
    assert response.status_code == 503
    assert "cannot be written" in response.json()["error"]
    mounts.unmount(root)
    client.app.state.service._storage_checked_at = -1e9
    assert client.get("/ready").status_code == 200
