"""Start to ready, and to every model loaded, with 1 and with 20 models in the registry.

Each registry holds LSTM language models of the issue's size: a 20,000-token vocabulary,
embedding 256, 2 × 512 layers (about 26 M parameters, 105 MB of float32 weights each), published
through ``ModelRegistry.publish`` with seeded weights (the vocabulary is synthetic: what a load
costs does not depend on the words). For each registry, ``seqlab serve`` (CPU 0, the model
memory unbounded, ``SEQLAB_PRELOAD_MODELS`` 20) is started ``--rounds`` times, alternating the
registries; measured from the process's start:

* ``ready``: the first ``GET /ready`` answered 200 (polled every 10 ms);
* ``preloaded``: every model loaded (``GET /info``'s ``model_memory.loaded``), which is what
  ``/ready`` waited for before models were loaded on demand;
* ``first answer``: a ``/predict`` to the one model nobody preloads when the budget holds only
  one (a second start with ``SEQLAB_MODEL_MEMORY`` = one model and ``SEQLAB_PRELOAD_MODELS`` 0:
  the load on first use);
* the process's resident memory once everything is loaded.

Run from the repository root: ``python -m bench.startup [--rounds 3]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import torch

from app.layout import DataLayout
from app.registry import ModelRegistry, weight_bytes
from app.tokenizers import TokenizerCache
from bench.common import (
    REPOSITORY_ROOT,
    benchmark_parser,
    format_table,
    machine_description,
    round_order,
)
from bench.servers import SOFTWARE, clean_environment, free_port
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import TokenizerConfig
from models.vocab import DEFAULT_SPECIALS, Vocab

VOCAB_SIZE = 20_000
SIZES = (1, 20)


def build_registry(data_dir: Path, count: int) -> int:
    """``count`` models in a fresh data dir; the bytes of one model's weights."""
    layout = DataLayout(data_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(layout, torch.device("cpu"), TokenizerCache(layout.jieba_cache))
    registry.load()
    specials = list(DEFAULT_SPECIALS)
    vocab = Vocab([*specials, *(f"w{i:05d}" for i in range(VOCAB_SIZE - len(specials)))])
    config = LanguageModelConfig(
        vocab_size=len(vocab), embedding_dim=256, hidden_size=512, num_layers=2, cell="lstm"
    )
    size = 0
    for index in range(count):
        torch.manual_seed(index)
        model = RNNLanguageModel(config)
        size = weight_bytes(model)
        registry.publish(f"m{index:02d}", model, vocab, TokenizerConfig(), create=True)
    registry.close()
    return size


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer) if answer.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def start(data_dir: Path, settings: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    environment = clean_environment(
        {
            "SEQLAB_DATA_DIR": str(data_dir),
            "SEQLAB_DEVICE": "cpu",
            "SEQLAB_LOG_LEVEL": "warning",
            "SEQLAB_CREATE_DEMO_MODEL": "false",
            "SEQLAB_TRAIN_DEMO_MODEL": "false",
            **settings,
        }
    )
    began = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPOSITORY_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}", began


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    process.wait(30)


def until(predicate, deadline_seconds: float = 300) -> float:
    deadline = time.perf_counter() + deadline_seconds
    while time.perf_counter() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(0.01)
    sys.exit("error: timed out")


def measure(data_dir: Path, count: int, one_model_bytes: int) -> dict[str, float]:
    process, base, began = start(data_dir, {"SEQLAB_PRELOAD_MODELS": str(count)})
    try:
        ready = until(lambda: get_json(f"{base}/ready") is not None) - began

        def all_loaded() -> bool:
            info = get_json(f"{base}/info")
            return info is not None and len(info["model_memory"]["loaded"]) == count

        preloaded = until(all_loaded) - began
        memory = resident_bytes(process.pid)
    finally:
        stop(process)
    budget = {"SEQLAB_PRELOAD_MODELS": "0", "SEQLAB_MODEL_MEMORY": str(one_model_bytes)}
    process, base, began = start(data_dir, budget)
    try:
        until(lambda: get_json(f"{base}/ready") is not None)
        body = json.dumps({"model": f"m{count - 1:02d}", "text": "w00001", "k": 3}).encode()
        asked = time.perf_counter()
        request = urllib.request.Request(
            f"{base}/predict", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
        first = time.perf_counter() - asked
    finally:
        stop(process)
    return {"ready": ready, "preloaded": preloaded, "first": first, "rss": memory}


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser("bench.startup", __doc__)
    parser.add_argument("--rounds", type=int, default=3, help="starts per registry")
    arguments = parser.parse_args(argv)
    print(machine_description(SOFTWARE))
    results: dict[int, list[dict[str, float]]] = {count: [] for count in SIZES}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temporary:
        directories = {count: Path(temporary) / f"r{count}" for count in SIZES}
        one_model = 0
        for count, directory in directories.items():
            built = time.perf_counter()
            one_model = build_registry(directory, count)
            print(
                f"registry of {count} model(s), {one_model / 1e6:.0f} MB of weights each, "
                f"built in {time.perf_counter() - built:.0f} s",
                flush=True,
            )
        for round_number in range(1, arguments.rounds + 1):
            for name in round_order([str(count) for count in SIZES], round_number):
                count = int(name)
                result = measure(directories[count], count, one_model)
                results[count].append(result)
                print(
                    f"  round {round_number}  {count:2d} model(s)  ready {result['ready']:.2f} s"
                    f"  all loaded {result['preloaded']:.2f} s  first use of an unloaded "
                    f"model {result['first'] * 1000:.0f} ms  RSS {result['rss'] / 1e9:.2f} GB",
                    flush=True,
                )
    rows = []
    for count in SIZES:
        runs = results[count]
        rows.append(
            [
                str(count),
                f"{statistics.median(r['ready'] for r in runs):.2f}",
                f"{statistics.median(r['preloaded'] for r in runs):.2f}",
                f"{statistics.median(r['first'] for r in runs) * 1000:.0f}",
                f"{statistics.median(r['rss'] for r in runs) / 1e9:.2f}",
            ]
        )
    print(f"\nmedian of {arguments.rounds} start(s):")
    headers = ["models", "ready s", "all loaded s", "first use ms", "RSS GB (all loaded)"]
    print(format_table(headers, rows))


if __name__ == "__main__":
    main()
