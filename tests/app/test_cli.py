"""The ``seqlab`` command: train on a file into the same registry, tokenize, and torchrun."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file

from app.cli import main
from tests.app.conftest import start_client
from tests.app.service_process import free_port
from tests.conftest import REPO_ROOT

CORPUS = "我爱学习自然语言处理\n我爱机器学习\n我爱自然语言处理\n" * 30
TRAIN = ["--seq-len", "4", "--batch-size", "4", "--embedding-dim", "8", "--hidden-size", "8"]


def test_tokenize_prints_tokens(capsys):
    assert main(["tokenize", "我爱自然语言处理"]) == 0
    assert capsys.readouterr().out.strip() == "我 / 爱 / 自然语言 / 处理"
    assert main(["tokenize", "我爱自然语言处理", "--offsets"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "2\t6\t自然语言"


def test_train_publishes_into_the_services_registry(tmp_path, make_settings, capsys):
    corpus = tmp_path / "lesson.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    data_dir = str(make_settings().data_dir)
    code = main(
        ["train", str(corpus), "--model", "cli-lm", "--create", "--data-dir", data_dir, *TRAIN]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "published cli-lm@1" in err
    assert "OOV rate 0.00%" in err
    # Training again continues from version 1.
    assert main(["train", str(corpus), "--model", "cli-lm", "--data-dir", data_dir, *TRAIN]) == 0
    client = start_client(make_settings(create_demo_model=False))
    try:
        info = client.get("/models/cli-lm").json()
        assert info["versions"] == [1, 2]
        assert info["source"] == {"kind": "cli", "base_version": 1}
    finally:
        client.__exit__(None, None, None)


def test_train_reports_impossible_settings(tmp_path, make_settings, capsys):
    corpus = tmp_path / "short.txt"
    corpus.write_text("我爱学习\n", encoding="utf-8")
    data_dir = str(make_settings().data_dir)
    arguments = ["train", str(corpus), "--model", "x", "--create", "--data-dir", data_dir]
    assert (
        main([*arguments, "--batching", "windows", "--seq-len", "50", "--val-fraction", "0"]) == 2
    )
    assert "seq_len" in capsys.readouterr().err
    assert main(["train", str(corpus), "--model", "missing", "--data-dir", data_dir]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_two_data_parallel_ranks_end_with_identical_weights(tmp_path, make_settings):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    corpus = tmp_path / "lesson.txt"
    corpus.write_text(CORPUS * 2, encoding="utf-8")
    weights = tmp_path / "weights"
    environment = {
        **os.environ,
        "SEQLAB_DATA_DIR": str(make_settings().data_dir),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "app.cli",
            "train",
            str(corpus),
            "--model",
            "ddp-lm",
            "--create",
            "--dump-weights",
            str(weights),
            "--epochs",
            "2",
            "--lr",
            "0.01",
            *TRAIN,
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published ddp-lm@1" in result.stderr
    rank0 = load_file(weights / "rank0.safetensors")
    rank1 = load_file(weights / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Training really happened: the weights moved away from the seeded initialisation.
    torch.manual_seed(0)
    from models.lm import LanguageModelConfig, RNNLanguageModel

    initial = RNNLanguageModel(
        LanguageModelConfig(vocab_size=8, embedding_dim=8, hidden_size=8, cell="lstm")
    ).state_dict()
    assert not torch.equal(initial["embedding.weight"], rank0["embedding.weight"])


def test_a_running_service_picks_up_what_the_cli_publishes(tmp_path, make_client, capsys):
    client = make_client(registry_sync_seconds=0.1)
    data_dir = str(client.app.state.service.settings.data_dir)
    corpus = tmp_path / "lesson.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    assert (
        main(["train", str(corpus), "--model", "lesson-rnn", "--data-dir", data_dir, *TRAIN[:4]])
        == 0
    )
    assert (
        main(["train", str(corpus), "--model", "new", "--create", "--data-dir", data_dir, *TRAIN])
        == 0
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if client.get("/models/new").status_code == 200:
            break
        time.sleep(0.05)
    assert client.get("/models/lesson-rnn").json()["versions"] == [1, 2]
    answer = client.post("/predict", json={"model": "lesson-rnn", "text": "我爱"})
    assert answer.headers["Seqlab-Model"] == "lesson-rnn@2"
    assert client.get("/models/new").json()["version"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("access_log", [False, True])
def test_serve_logs_each_request_only_when_asked(tmp_path, access_log):
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEQLAB_")},
        "SEQLAB_DATA_DIR": str(tmp_path / "data"),
        "SEQLAB_TRAIN_DEMO_MODEL": "false",
        "SEQLAB_CREATE_DEMO_MODEL": "false",
        "SEQLAB_ACCESS_LOG": "true" if access_log else "false",
    }
    log = tmp_path / "serve.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # /info goes through the app (/health is answered before it, and never logged).
        assert httpx.get(f"http://127.0.0.1:{port}/info").status_code == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    logged = '"GET /info HTTP/1.1" 200' in log.read_text()
    assert logged == access_log
