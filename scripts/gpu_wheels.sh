#!/usr/bin/env bash
# Build .gpu/: everything scripts/gpu_check.sh needs on the GPU test machine that the machine
# itself lacks, for its Python (3.12, manylinux x86_64), built HERE (the GPU machine has no
# network). See docs/gpu-check.md.
#
#   .gpu/wheels/            the wheels: seqlab's runtime dependencies from pyproject.toml
#                           (less torch and numpy: the GPU machine's own are used) with their
#                           whole dependency closure, plus pytest and httpx for the tests, each
#                           pinned to the version installed in .venv (what `make test` checks)
#   .gpu/requirements.txt   what gpu_check.sh installs from .gpu/wheels (--no-index)
#   .gpu/bin/wrk, .gpu/lib/ this machine's wrk and its LuaJIT library, for bench.http where the
#                           GPU machine has no wrk (best effort: skipped when wrk is missing here)
#
# seqlab itself is not a wheel: gpu_check.sh runs it from the source tree (PYTHONPATH).
# Environment: PYTHON (default .venv/bin/python: the pip that downloads, and the environment
# whose versions are pinned), GPU_PYTHON_VERSION (3.12), GPU_DIR (.gpu), GPU_WHEELS_LIMIT_MIB
# (50: the device tool carries 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
GPU_PYTHON_VERSION=${GPU_PYTHON_VERSION:-3.12}
GPU_DIR=${GPU_DIR:-.gpu}
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-50}
JIEBA=jieba==0.42.1
WHEELS=$GPU_DIR/wheels

if [ ! -x "$PYTHON" ]; then
    echo "error: $PYTHON not found: run \`make test\` (or set PYTHON=…) first" >&2
    exit 1
fi

rm -rf "$WHEELS" "$GPU_DIR/bin" "$GPU_DIR/lib"
mkdir -p "$WHEELS"

# The requirements: pyproject's runtime dependencies (extras kept) and the test runner, pinned
# to .venv's versions; the constraints pin the rest of the closure the same way.
"$PYTHON" - "$GPU_DIR" <<'EOF'
import re
import sys
import tomllib
from importlib.metadata import distributions, version
from pathlib import Path

gpu_dir = Path(sys.argv[1])
# torch: the GPU machine's CUDA build; numpy: its own (torch's), 16 MB of wheel.
EXCLUDED = {"torch", "numpy"}
TEST_DEPENDENCIES = ["pytest", "httpx"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
requirements = []
for spec in [*project["dependencies"], *TEST_DEPENDENCIES]:
    name, extras = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?", spec).groups()
    if canonical(name) not in EXCLUDED:
        requirements.append(f"{name}{extras or ''}=={version(name)}")
constraints = sorted(
    {
        f"{canonical(d.metadata['Name'])}=={d.version}"
        for d in distributions()
        if canonical(d.metadata["Name"]) not in EXCLUDED | {"seqlab", "pip", "setuptools"}
    }
)
(gpu_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")
(gpu_dir / "constraints.txt").write_text("\n".join(constraints) + "\n")
print("requirements:", " ".join(requirements))
EOF

# jieba publishes only an sdist: build its (pure Python) wheel here.
"$PYTHON" -m pip wheel --quiet --no-deps "$JIEBA" -w "$WHEELS"

# The closure, resolved for the GPU machine's interpreter and platform (the jieba wheel from
# above is found through --find-links). torch's cu130 wheels are manylinux_2_28, so that glibc
# is there.
"$PYTHON" -m pip download --quiet --dest "$WHEELS" --find-links "$WHEELS" \
    --only-binary=:all: --python-version "$GPU_PYTHON_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -c "$GPU_DIR/constraints.txt" -r "$GPU_DIR/requirements.txt"
rm -f "$GPU_DIR/constraints.txt"
if ls "$WHEELS" | grep -Eiq '^(torch|numpy|nvidia)[-_]'; then
    echo "error: torch, numpy or an nvidia wheel entered the closure: $(ls "$WHEELS")" >&2
    exit 1
fi

# wrk for bench.http (with its LuaJIT; libssl/libcrypto 3 and glibc are expected there).
if command -v wrk >/dev/null 2>&1; then
    mkdir -p "$GPU_DIR/bin" "$GPU_DIR/lib"
    cp "$(command -v wrk)" "$GPU_DIR/bin/wrk"
    luajit=$(ldd "$(command -v wrk)" | awk '/libluajit/ {print $3}')
    if [ -n "$luajit" ]; then cp -L "$luajit" "$GPU_DIR/lib/"; fi
else
    echo "note: no wrk here: bench.http runs on the GPU machine only if it has its own wrk"
fi

echo
ls -l "$WHEELS" | awk 'NR > 1 {printf "  %8.1f KiB  %s\n", $5 / 1024, $9}'
total_kib=$(du -sk "$GPU_DIR" | cut -f1)
echo "$GPU_DIR: $(ls "$WHEELS" | wc -l) wheels, $((total_kib / 1024)) MiB in all" \
    "(limit ${LIMIT_MIB} MiB)"
if [ "$total_kib" -gt $((LIMIT_MIB * 1024)) ]; then
    echo "error: $GPU_DIR is over ${LIMIT_MIB} MiB: the device tool carries 64 MiB in all" >&2
    exit 1
fi
