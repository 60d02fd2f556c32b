#!/usr/bin/env bash
# The GPU path, checked: run ON the GPU test machine, from the repository root, after
# `make gpu-check` built .gpu/ here (see docs/gpu-check.md):
#
#   run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=540)
#
# Steps (each under `timeout`, all within GPU_CHECK_BUDGET_S, 480 s by default):
#   install        the carried wheels into a temporary --target dir (no network, no venv: the
#                  machine's own python3 keeps its CUDA torch); seqlab runs from the source tree
#   environment    nvidia-smi, torch / CUDA / cuDNN versions, the device; stops the check
#                  when the device asked for is not there
#   cuda-tests     the tests that exercise CUDA (tests/models/test_device.py and the missing-GPU
#                  start-up test: the ones that skip on a GPU skip here, the others run)
#   cuda-smoke     seqlab on the device, end to end: fit (float32, bfloat16, stopped and resumed
#                  from its training state with the CUDA RNG), checkpoint round trip, generation;
#                  then the service (create_app on the device beside one on the CPU): /info,
#                  /models, /embed and /rnn/forward equal to the CPU's, a training job in its
#                  spawned worker, /predict, /generate, /score (the test suite pins its services
#                  to device="cpu", so this script is the service's test on the device)
#   bench-http     python -m bench.http --device DEVICE (short: --duration 5 --rounds 2)
#   bench-batching python -m bench.batching --device DEVICE, only where that module exists
#   models-tests   tests/models -m "not slow" on this machine's torch (its CPU)
#   service-tests  a sample of the service tests (tests/app/test_lesson.py) on its torch
#
# Everything goes to "$OUT" (set by the device tool; /tmp/seqlab-gpu-check-out otherwise):
# gpu-check.log (all of it), a log per step, the JUnit XML of each test step, cuda-smoke.json
# (the smoke's checks with their numbers), summary.txt (a line per step).
# Exit status: 0 all passed; 1 a test step (or the install) failed or timed out; 2 the tests
# passed but a benchmark failed or timed out. Steps skipped (no wrk, no bench.batching, no time
# left) are listed in the summary and fail nothing.
#
# Environment: PYTHON (python3), SEQLAB_GPU_CHECK_DEVICE (cuda; `cpu` for a dry run on a
# machine without a GPU), GPU_DIR (.gpu), GPU_CHECK_BUDGET_S (480), BENCH_HTTP_ARGS
# ("--duration 5 --rounds 2"), BENCH_BATCHING_ARGS ("--duration 3 --rounds 1"), GPU_CHECK_SKIP
# (names of steps to skip).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
PYTHON=${PYTHON:-python3}
DEVICE=${SEQLAB_GPU_CHECK_DEVICE:-cuda}
GPU_DIR=${GPU_DIR:-.gpu}
case $GPU_DIR in /*) ;; *) GPU_DIR=$REPO/$GPU_DIR ;; esac
BUDGET=${GPU_CHECK_BUDGET_S:-480}
BENCH_HTTP_ARGS=${BENCH_HTTP_ARGS:---duration 5 --rounds 2}
BENCH_BATCHING_ARGS=${BENCH_BATCHING_ARGS:---duration 3 --rounds 1}
GPU_CHECK_SKIP=${GPU_CHECK_SKIP:-}
OUT=${OUT:-${TMPDIR:-/tmp}/seqlab-gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seqlab-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STARTED=$SECONDS
SUMMARY=$OUT/summary.txt
TEST_FAILED=0
BENCH_FAILED=0

# The steps' environment: the carried packages before the machine's own, seqlab from here; no
# pip configuration of the machine's (an index, constraints) can get in the way.
export PYTHONPATH="$REPO:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# jieba 0.42.1 imports pkg_resources (as pyproject's pytest filter says)
export PYTHONWARNINGS="ignore:pkg_resources is deprecated:UserWarning"
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
for name in $(env | grep -o '^SEQLAB_[A-Z0-9_]*' | grep -v '^SEQLAB_GPU_CHECK_DEVICE$'); do
    unset "$name"
done
export SEQLAB_TRAIN_DEMO_MODEL=false

printf '%-15s %-10s %6s  %s\n' step result seconds note >"$SUMMARY"

# step NAME KIND MAX_SECONDS COMMAND…: KIND is test (a failure fails the check) or bench.
step() {
    local name=$1 kind=$2 max=$3
    shift 3
    case " $GPU_CHECK_SKIP " in *" $name "*)
        skip "$name" "GPU_CHECK_SKIP"
        return 0
        ;;
    esac
    local left=$((BUDGET - (SECONDS - STARTED)))
    local limit=$((max < left ? max : left))
    if [ "$limit" -lt 15 ]; then
        skip "$name" "no time left in the ${BUDGET} s budget"
        return 0
    fi
    echo
    echo "=== $name (at most ${limit} s): $*"
    local began=$SECONDS
    # SIGINT first, so Python runs its finally blocks (bench.http stops its servers).
    timeout -s INT -k 15 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    local took=$((SECONDS - began)) result=ok note=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        result="TIMED-OUT"
        note="after ${limit} s"
    elif [ "$rc" -ne 0 ]; then
        result="FAILED"
        note="exit status $rc"
    fi
    if [ "$result" != ok ]; then
        if [ "$kind" = test ]; then TEST_FAILED=1; else BENCH_FAILED=1; fi
    fi
    printf '%-15s %-10s %6s  %s\n' "$name" "$result" "$took" "$note" >>"$SUMMARY"
    echo "=== $name: $result (${took} s) $note"
    [ "$result" = ok ]
}

skip() {
    printf '%-15s %-10s %6s  %s\n' "$1" skipped - "$2" >>"$SUMMARY"
    echo
    echo "=== $1: skipped ($2)"
}

finish() {
    local status=0
    if [ "$TEST_FAILED" -ne 0 ]; then status=1; elif [ "$BENCH_FAILED" -ne 0 ]; then status=2; fi
    {
        echo
        echo "device $DEVICE; total $((SECONDS - STARTED)) s of a ${BUDGET} s budget;" \
            "exit status $status"
    } >>"$SUMMARY"
    echo
    echo "=== summary ($SUMMARY)"
    cat "$SUMMARY"
    exit "$status"
}

pytest_step() {
    local name=$1 max=$2
    shift 2
    step "$name" test "$max" "$PYTHON" -m pytest -p no:cacheprovider -q \
        --junitxml="$OUT/$name.xml" "$@"
}

# The check itself, its output teed to gpu-check.log (not indented: it holds here-documents).
main() {
echo "seqlab GPU check: device $DEVICE, python $PYTHON, repository $REPO, results in $OUT"
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD 2>/dev/null || commit="$commit with uncommitted changes"
    echo "commit $commit"
fi

# --- install ---------------------------------------------------------------------------------
if [ ! -f "$GPU_DIR/requirements.txt" ] || [ ! -d "$GPU_DIR/wheels" ]; then
    echo "error: $GPU_DIR/wheels is missing: run \`make gpu-check\` on the build machine" \
        "and carry $GPU_DIR"
    printf '%-15s %-10s %6s  %s\n' install FAILED - "no $GPU_DIR/wheels" >>"$SUMMARY"
    TEST_FAILED=1
    finish
fi
# --target installs the whole closure from the wheels (ignoring what the machine has), so the
# versions are those `make test` checks; torch and numpy stay the machine's own.
if ! step install test 120 "$PYTHON" -m pip install --no-index --find-links "$GPU_DIR/wheels" \
    --target "$WORK/site" --quiet -r "$GPU_DIR/requirements.txt"; then
    finish
fi

# wrk for bench.http: the machine's own, else the carried one behind a wrapper that finds its
# LuaJIT (LD_LIBRARY_PATH for wrk alone, never for Python).
if ! command -v wrk >/dev/null 2>&1 && [ -x "$GPU_DIR/bin/wrk" ]; then
    mkdir -p "$WORK/bin"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
        "$GPU_DIR/lib" "$GPU_DIR/bin/wrk" >"$WORK/bin/wrk"
    chmod +x "$WORK/bin/wrk"
    export PATH="$WORK/bin:$PATH"
fi

# --- environment -----------------------------------------------------------------------------
# (a script, not a function: `timeout` runs commands)
cat >"$WORK/environment.sh" <<'OUTER'
PYTHON=$1 DEVICE=$2
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
else
    echo "(no nvidia-smi)"
fi
echo "$(nproc) CPUs; $(ldd --version 2>&1 | head -1); wrk: $(command -v wrk || echo none)"
exec "$PYTHON" - "$DEVICE" <<'EOF'
import platform
import sys
from importlib.metadata import version

import torch

device = sys.argv[1]
print(f"python {platform.python_version()} at {sys.executable}")
cudnn = torch.backends.cudnn.version()
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn})")
print(
    f"TF32: cuDNN {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}"
)
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for index in range(torch.cuda.device_count()):
    properties = torch.cuda.get_device_properties(index)
    print(
        f"  cuda:{index} {properties.name}, {properties.total_memory / 2**30:.0f} GiB, "
        f"capability {properties.major}.{properties.minor}, "
        f"bf16 {torch.cuda.is_bf16_supported()}"
    )
packages = ["numpy", "jieba", "fastapi", "starlette", "pydantic", "uvicorn", "pytest", "httpx"]
print(", ".join(f"{name} {version(name)}" for name in packages))
import app.main  # noqa: E402,F401  (the service imports with these packages)
from models.device import resolve_device

print(f"seqlab resolves {device!r} to {resolve_device(device)}")
EOF
OUTER
if ! step environment test 90 bash "$WORK/environment.sh" "$PYTHON" "$DEVICE"; then
    echo "the device $DEVICE is not usable here: nothing else is run"
    finish
fi

# --- the CUDA tests --------------------------------------------------------------------------
pytest_step cuda-tests 120 -rs tests/models/test_device.py \
    "tests/app/test_faults.py::test_a_missing_gpu_is_one_line_at_start"

# --- seqlab on the device, end to end --------------------------------------------------------
cat >"$WORK/cuda_smoke.py" <<'EOF'
"""seqlab on one device, end to end: the modeling core, then the service beside a CPU one.

Everything runs under ``if __name__ == "__main__"``: training jobs and segmentation workers
are spawned processes, which import this file again.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

# The tests' own fixtures (the repository root is on PYTHONPATH): no copies to drift.
from tests.app.conftest import LESSON_MODEL
from tests.app.routers.test_training import SMALL_TEXTS
from tests.models.test_training_state import _stream as stream

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
CHECKS: list[tuple[str, object]] = []


def check(name):
    """Register a check; main() runs them in order."""

    def register(function):
        CHECKS.append((name, function))
        return function

    return register


def run_checks() -> list[dict]:
    results = []
    for name, function in CHECKS:
        began = time.perf_counter()
        try:
            detail = function()
            ok = True
        except Exception:
            detail = traceback.format_exc()
            ok = False
        seconds = time.perf_counter() - began
        results.append({"check": name, "ok": ok, "seconds": round(seconds, 2), "detail": detail})
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({seconds:.1f} s): {detail}", flush=True)
    return results


def finite(value) -> bool:
    """Every number in a JSON answer is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


# --- the modeling core -----------------------------------------------------------------------
from models.checkpoint import load_checkpoint, save_checkpoint
from models.device import resolve_device
from models.generation import generate
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import TokenizerConfig
from models.training import TrainingConfig, fit, split_ids
from models.training_state import load_training_state, save_training_state
from models.vocab import Vocab

device = torch.device("cpu")  # main() sets the device under test


def data() -> tuple[torch.Tensor, torch.Tensor]:
    return split_ids(stream(), 0.1)


def new_model(cell: str = "lstm", dropout: float = 0.2) -> RNNLanguageModel:
    torch.manual_seed(3)
    config = LanguageModelConfig(
        vocab_size=40, embedding_dim=32, hidden_size=64, num_layers=2, cell=cell, dropout=dropout
    )
    return RNNLanguageModel(config).to(device)


def config(**overrides) -> TrainingConfig:
    # tests/models/test_training_state.py's run: 2 epochs of 42 steps.
    settings = {"seq_len": 8, "batch_size": 8, "epochs": 2, "lr": 0.01, "seed": 11, "log_every": 8}
    return TrainingConfig(**{"checkpoint_every_seconds": None, **settings, **overrides})


@check("fit float32 and bfloat16 on the device")
def _fit():
    train_ids, val_ids = data()
    lines = []
    for precision in ("float32", "bfloat16"):
        model = new_model()
        result = fit(model, train_ids, val_ids, config(precision=precision))
        assert model.device == device, model.device
        first = result.steps_history[0]["loss"]
        assert math.isfinite(result.train_loss), result
        assert result.train_loss < first, result
        assert math.isfinite(result.val_perplexity or math.nan), result
        lines.append(
            f"{precision}: {result.steps} steps, loss {first:.3f} -> {result.train_loss:.3f}, "
            f"val ppl {result.val_perplexity:.2f}, {result.tokens_per_second:,.0f} tokens/s"
        )
    return "; ".join(lines)


def resume_check(dropout: float) -> str:
    """A run stopped at step 37 and resumed from its state at step 32 ends as an uninterrupted
    one (tests/models/test_training_state.py, here on the device)."""
    train_ids, val_ids = data()
    expected_model = new_model(dropout=dropout)
    expected = fit(expected_model, train_ids, val_ids, config())
    with tempfile.TemporaryDirectory() as states:
        asked = {"times": 0}

        def stop() -> bool:
            asked["times"] += 1
            return asked["times"] > 37

        fit(
            new_model(dropout=dropout),
            train_ids,
            val_ids,
            config(checkpoint_every_steps=8),
            on_checkpoint=lambda state: save_training_state(states, state),
            should_stop=stop,
        )
        state = load_training_state(states)
        assert state is not None, "no training state was saved"
        assert state.step == 32, state.step
        if device.type == "cuda":
            assert "cuda" in state.rng, sorted(state.rng)
        resumed_model = new_model(dropout=dropout)
        resumed = fit(
            resumed_model, train_ids, val_ids, config(checkpoint_every_steps=8), resume=state
        )
    assert resumed.steps == expected.steps, (resumed.steps, expected.steps)
    largest = max(
        (resumed_model.state_dict()[name] - tensor).abs().max().item()
        for name, tensor in expected_model.state_dict().items()
    )
    loss_gap = abs(resumed.train_loss - expected.train_loss)
    # The CPU gives the very same weights (tests/models/test_training_state.py, 1e-6); cuDNN may
    # add non-deterministic rounding, so the device is held to 1e-3.
    assert largest < 1e-3, f"weights differ by up to {largest:.2e}"
    return f"{resumed.steps} steps; weights differ by up to {largest:.2e}, loss by {loss_gap:.2e}"


@check("stopped and resumed = uninterrupted, no dropout")
def _resume_plain():
    return resume_check(0.0)


# Dropout of the embedding and the output (nn.Dropout: the device's generator, saved in the
# training state) and between the LSTM's layers (on CUDA, cuDNN's own dropout state): a failure
# here with the check above passing points at the latter.
@check("stopped and resumed = uninterrupted, dropout 0.2 (device RNG in the state)")
def _resume_dropout():
    return resume_check(0.2)


@check("checkpoint round trip onto the device, and generation")
def _checkpoint():
    model = new_model("gru")
    model.eval()
    vocab = Vocab.build([[f"w{i}" for i in range(40)]], specials=[])
    with tempfile.TemporaryDirectory() as directory:
        path = save_checkpoint(Path(directory) / "checkpoint", model, vocab, TokenizerConfig())
        loaded = load_checkpoint(path, device).model
    assert loaded.device == device, loaded.device
    ids = data()[0][:64].reshape(4, 16).to(device)
    with torch.no_grad():
        difference = (model.log_probs(ids)[0] - loaded.log_probs(ids)[0]).abs().max().item()
    assert difference == 0, difference
    greedy = generate(loaded, [0, 1, 2], max_tokens=20, temperature=0)[0].ids
    sampled = generate(loaded, [0, 1, 2], max_tokens=20, temperature=0.8, seed=0, n=3)
    again = generate(loaded, [0, 1, 2], max_tokens=20, temperature=0.8, seed=0, n=3)
    assert [c.ids for c in sampled] == [c.ids for c in again], "a seed must repeat"
    return f"identical log-probs; greedy {greedy[:8]}…; 3 seeded samples repeat"


# --- the service on the device, beside one on the CPU ----------------------------------------
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

clients: dict[str, TestClient] = {}


def start(name: str, device_spec: str) -> TestClient:
    root = Path(tempfile.mkdtemp(prefix="seqlab-smoke-"))
    settings = Settings(data_dir=root / name, device=device_spec, train_demo_model=False)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    deadline = time.monotonic() + 60
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.05)
    clients[name] = client
    return client


def post(client: TestClient, path: str, body: dict, status: int = 200) -> dict:
    answer = client.post(path, json=body)
    assert answer.status_code == status, (path, answer.status_code, answer.text[:2000])
    payload = answer.json()
    assert finite(payload), (path, "a number is not finite")
    return payload


@check("the service starts on the device and says so")
def _start():
    service = start("device", str(device))
    start("cpu", "cpu")
    info = service.get("/info").json()
    assert info["device"] == str(device), info["device"]
    models = service.get("/models").json()
    listed = models["models"] if isinstance(models, dict) else models
    devices = {entry["name"]: entry.get("device") for entry in listed}
    assert all(value == str(device) for value in devices.values()), devices
    return f"/info device {info['device']}; models {devices}"


@check("/embed and /rnn/forward on the device give the CPU's numbers")
def _same_numbers():
    service, cpu = clients["device"], clients["cpu"]
    for client in (service, cpu):
        post(client, "/models", LESSON_MODEL, status=201)
    texts = {"texts": ["我爱学习自然语言处理", "我爱机器学习"]}
    gaps = {}
    for model in ("lesson", "lesson-rnn"):
        ours = post(service, "/embed", {"model": model, **texts})
        theirs = post(cpu, "/embed", {"model": model, **texts})
        assert ours["vectors"] == theirs["vectors"], f"{model}: embedding rows differ"
        ours = post(service, "/rnn/forward", {"model": model, **texts, "return_states": True})
        theirs = post(cpu, "/rnn/forward", {"model": model, **texts, "return_states": True})
        for key in ("output", "hn"):
            a = torch.tensor(ours[key]["values"])
            b = torch.tensor(theirs[key]["values"])
            assert a.shape == b.shape, (model, key, a.shape, b.shape)
            gaps[f"{model} {key}"] = (a - b).abs().max().item()
    tensor_form = {
        "rnn": {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0},
        "input": torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(1)).tolist(),
    }
    a = post(service, "/rnn/forward", tensor_form)["output"]["values"]
    b = post(cpu, "/rnn/forward", tensor_form)["output"]["values"]
    gaps["tensor form output"] = (torch.tensor(a) - torch.tensor(b)).abs().max().item()
    # cuDNN may compute float32 recurrences in TF32 (torch.backends.cudnn.allow_tf32, on by
    # default): ~1e-3 apart from the CPU then, ~1e-7 without it. More than 1e-2 is a bug.
    worst = max(gaps.values())
    assert worst < 1e-2, gaps
    kind = "float32 rounding" if worst < 1e-5 else "TF32-sized"
    return f"embedding rows equal; largest |device - cpu| ({kind}) " + ", ".join(
        f"{key} {value:.1e}" for key, value in gaps.items()
    )


@check("training jobs (spawned workers on the device) publish, then /predict /generate /score")
def _train():
    service = clients["device"]
    lines = []
    for precision, body in (
        ("float32", {"create": {"embedding_dim": 32, "hidden_size": 64, "cell": "lstm"}}),
        ("bfloat16", {}),  # the same model trained further
    ):
        job = post(
            service,
            "/train",
            {
                "model": "smoke-lm",
                "texts": SMALL_TEXTS,
                "seq_len": 4,
                "batch_size": 4,
                "epochs": 2,
                "lr": 0.01,
                "val_fraction": 0.1,
                "precision": precision,
                "wait": True,
                **body,
            },
        )
        assert job["status"] == "succeeded", job.get("error")
        metrics = job.get("metrics") or {}
        lines.append(
            f"{precision}: version {job['version']}, "
            f"val ppl {metrics.get('val_perplexity') or math.nan:.2f}, "
            f"{metrics.get('tokens_per_second') or 0:,.0f} tokens/s"
        )
    described = service.get("/models/smoke-lm").json()
    assert described.get("device", str(device)) == str(device), described.get("device")
    predict = post(service, "/predict", {"model": "smoke-lm", "text": "我爱", "k": 3})
    assert predict["candidates"], predict
    generated = post(
        service,
        "/generate",
        {"model": "smoke-lm", "prompt": "我爱", "max_tokens": 12, "n": 2, "seed": 0},
    )
    scored = post(service, "/score", {"model": "smoke-lm", "texts": SMALL_TEXTS[:3]})
    assert scored["perplexity"] is not None
    top = predict["candidates"][0]
    lines.append(
        f"predict {top.get('token')!r} first; generate {len(generated.get('choices') or [1])} "
        f"choice(s); score ppl {scored['perplexity']:.2f}"
    )
    return "; ".join(lines)


def main() -> None:
    global device
    device = resolve_device(sys.argv[1])
    out = Path(sys.argv[2])
    try:
        results = run_checks()
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)
    (out / "cuda-smoke.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    failed = [result["check"] for result in results if not result["ok"]]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed on {device}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
EOF
step cuda-smoke test 180 "$PYTHON" "$WORK/cuda_smoke.py" "$DEVICE" "$OUT"

# --- benchmarks on the device ----------------------------------------------------------------
wrk_says=$(wrk -v 2>&1 | head -1)  # `wrk -v` exits 1 even when it works
if [ "${wrk_says#wrk }" = "$wrk_says" ]; then
    skip bench-http "no working wrk: $wrk_says"
elif ! command -v taskset >/dev/null 2>&1; then
    skip bench-http "no taskset (util-linux)"
else
    # shellcheck disable=SC2086  # BENCH_HTTP_ARGS is a list of words
    step bench-http bench 180 "$PYTHON" -m bench.http --device "$DEVICE" $BENCH_HTTP_ARGS
fi

if "$PYTHON" -c 'import bench.batching' >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    step bench-batching bench 150 \
        "$PYTHON" -m bench.batching --device "$DEVICE" $BENCH_BATCHING_ARGS
else
    skip bench-batching "bench/batching.py is not in this tree"
fi

# --- the rest of the core and a sample of the service, on this machine's torch ---------------
pytest_step models-tests 120 -m "not slow" tests/models
pytest_step service-tests 90 tests/app/test_lesson.py

finish
}

main 2>&1 | tee "$OUT/gpu-check.log"
exit "${PIPESTATUS[0]}"
