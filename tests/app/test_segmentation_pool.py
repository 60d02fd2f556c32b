"""Large /tokenize requests segmented by worker processes: the same answers as in one process,
a worker that dies costs nothing but a restart, and the setting that sizes the pool."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.segmentation import (
    MIN_PIECE_CHARS,
    _merge,
    _segment_chunk,
    chunk_texts,
    pool_size,
    split_text,
)
from app.settings import Limits, Settings
from models.tokenizer import Tokenizer, TokenizerConfig
from tests.app.conftest import start_client

SAMPLE = (Path(__file__).resolve().parents[2] / "app" / "samples" / "xiyouji.txt").read_text(
    encoding="utf-8"
)
# 12 texts of 1,500 characters: 18,000 in all, far past what the event loop answers itself.
TEXTS = [SAMPLE[i * 1500 : (i + 1) * 1500] for i in range(12)]
MODEL = {
    "name": "pooled",
    "texts": TEXTS[:2],
    "tokenizer": {"user_words": ["花果山", "美猴王"], "hmm": False},
    "embedding_dim": 4,
    "hidden_size": 4,
    "num_layers": 1,
    "cell": "rnn",
    "seed": 0,
}
LIMITS = Limits(max_text_chars=60_000, max_body_bytes=4_194_304)


def pool_of(client: TestClient):
    return client.app.state.service.segmentation


def start(tmp_path: Path, processes: int) -> TestClient:
    settings = Settings(
        data_dir=tmp_path, device="cpu", segmentation_processes=processes, limits=LIMITS
    )
    client = start_client(settings)
    if processes > 1:
        assert pool_of(client).wait_ready(120), "the segmentation workers never became ready"
    assert client.post("/models", json=MODEL).status_code == 201
    return client


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    """A service with two segmentation workers and one without any."""
    pooled = start(tmp_path_factory.mktemp("pooled"), 2)
    threaded = start(tmp_path_factory.mktemp("threaded"), 1)
    yield pooled, threaded
    for client in (pooled, threaded):
        client.__exit__(None, None, None)


BODIES = {
    "default": {"texts": TEXTS},
    "offsets": {"texts": TEXTS, "offsets": True},
    "user words": {"texts": TEXTS, "offsets": True, "user_words": ["花果山", "水帘洞"]},
    "hmm off": {"texts": TEXTS, "offsets": True, "hmm": False},
    "full mode": {"texts": TEXTS, "offsets": True, "mode": "full"},
    "search mode": {"texts": TEXTS, "offsets": True, "mode": "search", "hmm": False},
    "normalised": {
        "texts": [text.replace("一", "ＡＢ") for text in TEXTS],
        "offsets": True,
        "normalization": "nfkc",
        "lowercase": True,
        "drop_punctuation": True,
    },
    "whitespace kept": {"texts": TEXTS, "offsets": True, "drop_whitespace": False},
    "a model": {"texts": TEXTS, "model": "pooled", "offsets": True},
    "uneven texts": {"texts": [SAMPLE[:9000], "花果山", SAMPLE[9000:9100], SAMPLE[20000:23000]]},
    # One text of 50,000 characters, cut into pieces at line ends.
    "one long text": {"text": SAMPLE[:50_000], "offsets": True},
    "one long text, full mode": {"text": SAMPLE[:50_000], "offsets": True, "mode": "full"},
    # 300,000 characters: 3 chunks for 2 workers, one of them sent when another is done.
    "more chunks than workers": {"texts": [SAMPLE[:50_000]] * 6},
}


@pytest.mark.parametrize("name", list(BODIES))
def test_the_workers_answer_what_one_process_answers(clients, name):
    pooled, threaded = clients
    pool = pool_of(pooled)
    chunks, fallbacks = pool.chunks, pool.fallbacks
    body = BODIES[name]
    answer = pooled.post("/tokenize", json=body)
    expected = threaded.post("/tokenize", json=body)
    assert answer.status_code == expected.status_code == 200, answer.text
    assert answer.json() == expected.json()
    assert pool.chunks >= chunks + 2, "the workers did not segment it"
    assert pool.fallbacks == fallbacks


def test_small_requests_stay_in_the_service_process(clients):
    pooled, _ = clients
    pool = pool_of(pooled)
    chunks = pool.chunks
    answer = pooled.post("/tokenize", json={"texts": ["我爱学习自然语言处理", "我爱机器学习"]})
    assert answer.json()["tokens"][0] == ["我", "爱", "学习", "自然语言", "处理"]
    assert pool.chunks == chunks


def test_a_long_text_is_cut_where_the_tokens_stay_the_same(clients):
    pooled, _ = clients
    pieces = split_text(SAMPLE[:50_000], 25_000)
    assert len(pieces) == 2
    assert pieces[0][1].endswith("\n")
    assert "".join(piece for _, piece in pieces) == SAMPLE[:50_000]
    answer = pooled.post("/tokenize", json={"text": SAMPLE[:50_000], "offsets": True}).json()
    for token, (start, end) in zip(answer["tokens"][0], answer["offsets"][0], strict=True):
        assert SAMPLE[start:end] == token


def _mixed_text(generator: random.Random, length: int) -> str:
    alphabet = [*"花果山水帘洞美猴王齐天大圣孙悟空我爱学习自然语言处理", *"，。！？：“”、"]
    alphabet += [" ", "\n", "\n", "\r\n", "\t", "AI", "GPT-4", "3.14", "c++", "#tag", "100%"]
    return "".join(generator.choice(alphabet) for _ in range(length))


@pytest.mark.parametrize(
    "config",
    [
        TokenizerConfig(),
        TokenizerConfig(hmm=False),
        TokenizerConfig(mode="full"),
        TokenizerConfig(mode="full", hmm=False),
        TokenizerConfig(mode="search"),
        TokenizerConfig(drop_whitespace=False),
        TokenizerConfig(drop_punctuation=True, user_words=("孙悟空齐天",)),
        TokenizerConfig(backend="whitespace"),
    ],
    ids=repr,
)
def test_pieces_give_the_tokens_and_offsets_of_the_whole_text(jieba_cache_dir, config):
    """What the pool relies on to cut a text: mixed Han, Latin, digits, punctuation, spaces,
    CRLF; every cut, in every mode, gives the whole text's tokens and offsets."""
    tokenizer = Tokenizer(config, jieba_cache_dir)
    generator = random.Random(7)
    for _ in range(20):
        text = _mixed_text(generator, 400)
        whole = tokenizer.segment(text, offsets=True)
        for size in (1, 7, 50):
            pieces = split_text(text, size)
            assert "".join(piece for _, piece in pieces) == text
            assert len(pieces) > 1
            # As a worker segments them (each piece alone), and as the service joins them.
            result = _segment_chunk(config, pieces, offsets=True)
            units = [(0, start, piece) for start, piece in pieces]
            assert _merge(1, [units], [result], offsets=True) == [whole]


def test_chunks_are_whole_texts_in_order_of_about_equal_size():
    texts = ["甲" * 100] * 7 + ["乙" * 10]
    chunks = chunk_texts(texts, 2, cut_texts=True)
    assert len(chunks) == 2
    assert [index for chunk in chunks for index, _, _ in chunk] == list(range(8))
    assert all(start == 0 for chunk in chunks for _, start, _ in chunk)
    assert chunk_texts(["短"], 4, cut_texts=True) == [[(0, 0, "短")]]
    # A text larger than its share is cut (where it can be) only when asked to.
    long = ("花果山" * 1000 + "\n") * 8
    assert len(chunk_texts([long], 2, cut_texts=True)) == 2
    assert len(chunk_texts([long], 2, cut_texts=False)) == 1
    assert len(split_text(long, MIN_PIECE_CHARS)) > 1


def test_a_worker_that_dies_costs_a_restart_not_an_answer(tmp_path, clients):
    _, threaded = clients
    client = start(tmp_path, 2)
    try:
        pool = pool_of(client)
        body = BODIES["offsets"]
        expected = threaded.post("/tokenize", json=body).json()
        # Killed while idle: the next request finds the pool broken.
        os.kill(pool.pids()[0], signal.SIGKILL)
        answer = client.post("/tokenize", json=body)
        assert answer.status_code == 200
        assert answer.json() == expected
        assert pool.fallbacks == 1  # segmented in the service process
        assert pool.wait_ready(120), "the pool did not start again"
        assert pool.restarts >= 1
        # Killed while segmenting (or just before: either way the answer is whole).
        answers: list = []
        request = threading.Thread(
            target=lambda: answers.append(client.post("/tokenize", json=body))
        )
        pids = pool.pids()
        request.start()
        os.kill(pids[-1], signal.SIGKILL)
        request.join(120)
        assert answers[0].status_code == 200
        assert answers[0].json() == expected
        # And the restarted workers segment again (a first request may still find the
        # killed pool, if the kill came after the answer: it restarts it).
        for _ in range(3):
            assert pool.wait_ready(120)
            chunks = pool.chunks
            assert client.post("/tokenize", json=body).json() == expected
            if pool.chunks > chunks:
                break
        else:
            pytest.fail("the restarted workers never segmented")
        workers = pool.pids()
    finally:
        client.__exit__(None, None, None)
    assert pool.pids() == []
    assert [pid for pid in workers if _alive(pid)] == []


def test_workers_import_neither_torch_nor_the_web_stack(clients):
    pooled, _ = clients
    for pid in pool_of(pooled).pids():
        mapped = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in mapped
    # What a worker imports: this module and, as `seqlab serve`'s main module, app.cli.
    code = (
        "import sys, app.segmentation, app.cli; "
        "print(','.join(m for m in ('torch', 'fastapi', 'starlette') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command (state first, then the parent's pid)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _workers(pid: int) -> list[int]:
    """The segmentation workers of process ``pid`` (its children that multiprocessing spawned)."""
    workers = []
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[1] == str(pid):
            try:
                if b"spawn_main" in (entry / "cmdline").read_bytes():
                    workers.append(int(entry.name))
            except OSError:
                continue
    return workers


def _rss_kilobytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _wait(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_seqlab_serve_workers_load_no_torch_and_end_with_the_service(start_service):
    service = start_service({"SEQLAB_SEGMENTATION_PROCESSES": "2"})
    pid = service.process.pid
    _wait(lambda: len(_workers(pid)) == 2, "seqlab serve started no segmentation workers")
    workers = _workers(pid)
    # Started, imported and loaded jieba's dictionary (tens of MB): what they hold is all.
    _wait(
        lambda: all(_rss_kilobytes(worker) > 40_000 for worker in workers),
        "the workers never loaded jieba's dictionary",
    )
    time.sleep(0.5)
    for worker in workers:
        assert "libtorch" not in Path(f"/proc/{worker}/maps").read_text()
    answer = httpx.post(f"{service.base}/tokenize", json=BODIES["offsets"], timeout=60)
    assert answer.status_code == 200
    # The service killed outright (no shutdown): its workers do not outlive it.
    service.kill(group=False)
    _wait(
        lambda: not any(_alive(worker) for worker in workers),
        "the segmentation workers outlived the service",
        timeout=30,
    )


def test_the_setting_sizes_the_pool(tmp_path, monkeypatch):
    assert pool_size(0) == ((os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0)
    assert pool_size(1) == 0
    assert pool_size(3) == 3
    with pytest.raises(ValidationError, match="segmentation_processes"):
        Settings(data_dir=tmp_path, segmentation_processes=-1)
    monkeypatch.setenv("SEQLAB_SEGMENTATION_PROCESSES", "3")
    assert Settings(data_dir=tmp_path).segmentation_processes == 3
    monkeypatch.setenv("SEQLAB_SEGMENTATION_PROCESSES", "many")
    with pytest.raises(ValidationError, match="segmentation_processes"):
        Settings(data_dir=tmp_path)


def test_one_process_means_no_pool(clients):
    pooled, threaded = clients
    pool = pool_of(threaded)
    assert pool.processes == 0
    assert pool.pids() == []
    assert not pool.ready
    # With workers, one request more is admitted: its chunks wait for the workers.
    running = [
        client.get("/info").json()["admission"]["segmentation"]["running"]
        for client in (pooled, threaded)
    ]
    assert running == [2, 1]
    answer = threaded.post("/tokenize", json=BODIES["default"])
    assert answer.status_code == 200
    assert len(answer.json()["tokens"]) == len(TEXTS)
