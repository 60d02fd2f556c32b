"""Nothing another live process is writing is swept: pending versions, job dirs, uploads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.corpora import CorpusStore
from app.jobs import files
from app.jobs.manager import PREPARING_GRACE_SECONDS
from app.model_index import ModelIndex, VersionLostError
from app.ownership import LEASE_SECONDS, Owner, kept_fresh, lease_of, lease_until, writer_gone
from app.registry import ModelRegistry
from app.tokenizers import TokenizerCache
from tests.app.conftest import start_client

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def dead_owner() -> Owner:
    """The owner record of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner(Owner.current().host, child.pid, 0)
    child.wait()
    return owner


def test_a_live_process_is_alive_and_a_gone_or_recycled_one_is_not():
    me = Owner.current()
    assert me.is_alive() is True
    assert not writer_gone(me, None)
    assert dead_owner().is_alive() is False
    recycled = Owner(me.host, me.pid, me.started + 1)  # same pid, another process
    assert recycled.is_alive() is False
    assert Owner.from_token(me.token) == me
    assert Owner.from_dict(me.to_dict()) == me


def test_another_hosts_writer_is_trusted_until_its_lease_expires(tmp_path):
    elsewhere = Owner("another-host", 1234, 99)
    assert elsewhere.is_alive() is None
    assert not writer_gone(elsewhere, lease_until(60))
    assert writer_gone(elsewhere, lease_until(-1))
    assert writer_gone(None, None)  # written by a release that recorded no owner
    # a file's lease is its last change: fresh from another host, it stays
    fresh = tmp_path / f"0123456789abcdef.{elsewhere.token}.partial"
    fresh.write_text("half", encoding="utf-8")
    assert not writer_gone(elsewhere, lease_of(fresh))
    old = time.time() - 2 * LEASE_SECONDS
    os.utime(fresh, (old, old))
    assert writer_gone(elsewhere, lease_of(fresh))


def test_a_swept_writer_gets_a_clear_error(tmp_path):
    index = ModelIndex(tmp_path / "index.sqlite3")
    version = index.reserve_version("m", create=True, source={})
    (pending,) = index.pending_versions()
    assert pending.writer == Owner.current()
    assert index.renew_lease("m", version)
    index.discard_version("m", version)  # what a sweeping service does
    assert not index.renew_lease("m", version)
    with pytest.raises(VersionLostError, match=r"m@1 was swept by another process"):
        index.mark_ready("m", version, {})
    index.close()


WRITER = textwrap.dedent(
    """
    import os, signal, sys, torch
    import app.registry as registry_module
    from app.layout import DataLayout
    from app.tokenizers import TokenizerCache
    from models.lm import LanguageModelConfig, RNNLanguageModel
    from models.tokenizer import TokenizerConfig
    from models.vocab import Vocab

    from pathlib import Path
    layout = DataLayout(Path(sys.argv[1]))
    registry = registry_module.ModelRegistry(layout, "cpu", TokenizerCache(layout.jieba_cache))
    registry.load()
    original = registry_module.fsync_directory

    def stop_in_the_pending_window(path):
        original(path)
        registry_module.fsync_directory = original
        print("pending", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)  # the row is pending, the files moved in

    registry_module.fsync_directory = stop_in_the_pending_window
    vocab = Vocab.build([["我", "爱"]])
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=len(vocab), hidden_size=4))
    loaded = registry.publish("racey", model, vocab, TokenizerConfig(), create=True)
    print("published", loaded.label, flush=True)
    """
)


def start_writer(data_dir: Path) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "pending"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{writer.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the writer never stopped"
        time.sleep(0.01)
    return writer


@pytest.mark.slow
def test_a_service_starting_beside_a_paused_writer_leaves_its_version(make_settings):
    settings = make_settings(create_demo_model=False, registry_sync_seconds=0.1)
    writer = start_writer(settings.data_dir)
    try:
        client = start_client(settings)
        try:
            assert client.get("/models").json()["models"] == []  # not ready yet, not swept
            assert (settings.layout.models / "racey" / "v1").is_dir()
            os.kill(writer.pid, signal.SIGCONT)
            out, _ = writer.communicate(timeout=60)
            assert writer.returncode == 0
            assert "published racey@1" in out
            deadline = time.monotonic() + 10
            while client.get("/models/racey").status_code != 200:
                assert time.monotonic() < deadline, "the service never picked the version up"
                time.sleep(0.05)
            answer = client.post("/predict", json={"model": "racey", "text": "我爱", "k": 1})
            assert answer.status_code == 200
        finally:
            client.__exit__(None, None, None)
    finally:
        if writer.poll() is None:
            writer.kill()


@pytest.mark.slow
def test_a_pending_version_of_a_killed_writer_is_swept(make_settings):
    settings = make_settings(create_demo_model=False)
    writer = start_writer(settings.data_dir)
    writer.kill()
    writer.wait()
    registry = ModelRegistry(settings.layout, "cpu", TokenizerCache(settings.layout.jieba_cache))
    registry.load()
    assert registry.index.pending_versions() == []
    assert not (settings.layout.models / "racey").exists()
    registry.close()


def test_half_written_uploads_are_swept_only_when_their_writer_is_gone(tmp_path):
    directory = tmp_path / "corpora"
    directory.mkdir()
    mine = directory / f"0123456789abcdef.{Owner.current().token}.partial"
    gone = directory / f"1123456789abcdef.{dead_owner().token}.partial"
    legacy = directory / "2123456789abcdef.partial"
    for path in (mine, gone, legacy):
        path.write_text("half", encoding="utf-8")
    store = CorpusStore(directory, tmp_path / "index.sqlite3")
    assert mine.exists()
    assert not gone.exists()
    assert not legacy.exists()
    store.close()


def test_job_directories_are_swept_only_when_nobody_will_use_them(make_settings):
    settings = make_settings(create_demo_model=False)
    jobs = settings.layout.jobs
    mine = jobs / f"{files.CLI_JOB_PREFIX}{Owner.current().token}-rank1"
    gone = jobs / f"{files.CLI_JOB_PREFIX}{dead_owner().token}"
    unrecorded = jobs / "0123456789abcdef"
    preparing = jobs / "fedcba9876543210"  # another process may be preparing it right now
    for directory in (mine, gone, unrecorded, preparing):
        directory.mkdir(parents=True)
    stale = time.time() - PREPARING_GRACE_SECONDS - 60
    os.utime(unrecorded, (stale, stale))
    client = start_client(settings)
    try:
        assert mine.is_dir()
        assert not gone.exists()
        assert not unrecorded.exists()
        assert preparing.is_dir()
    finally:
        client.__exit__(None, None, None)


def test_a_directory_kept_fresh_keeps_its_lease_until_the_block_ends(tmp_path: Path) -> None:
    directory = tmp_path / "cli-elsewhere~1~1"
    directory.mkdir()
    long_ago = time.time() - 2 * LEASE_SECONDS
    os.utime(directory, (long_ago, long_ago))
    other_host = Owner("another-host", 1, 1)
    assert writer_gone(other_host, lease_of(directory))  # a lease old: swept
    with kept_fresh(directory, every=0.05):
        time.sleep(0.3)
        assert not writer_gone(other_host, lease_of(directory))
    os.utime(directory, (long_ago, long_ago))
    time.sleep(0.3)  # renewals stopped with the block
    assert writer_gone(other_host, lease_of(directory))
