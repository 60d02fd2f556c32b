# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
# The CPU wheel of torch, pinned and installed before the project so that pip never
# resolves the multi-GB CUDA build. Override for a GPU machine, e.g. TORCH_SPEC=torch==2.13.0
# with TORCH_INDEX=https://download.pytorch.org/whl/cu128.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.seqlab-installed

.PHONY: serve test test-deps lint format bench clean gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/seqlab serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Debian packages the tests start for real: Chromium for the browser tests (test_docs.py,
# test_playground.py) and PostgreSQL's server binaries for the PostgreSQL half of the storage
# tests (tests/app/storage). Best effort, never fails: installs only what is missing, as root,
# with apt-get; the tests skip cleanly without them. CI runs it before `make test`.
test-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null 2>&1 \
			|| echo "could not install$$missing: the tests that need them will be skipped"; \
	else echo "missing$$missing (apt-get install -y$$missing): the tests that need them will be skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.tokenizer
	$(BIN)/python -m bench.training
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.train_http
	$(BIN)/python -m bench.training_step
	$(BIN)/python -m bench.wikitext
	$(BIN)/python -m bench.chinese_lm
	$(BIN)/python -m bench.page
	$(BIN)/python -m bench.binary
	$(BIN)/python -m bench.bulk_tokenize
	$(BIN)/python -m bench.batching
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.replicas

# The GPU path, checked (docs/gpu-check.md): builds .gpu/ here (wheels for the GPU machine's
# Python 3.12 pinned to .venv's versions, and wrk), then prints what to run on that machine.
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/gpu_wheels.sh
	@echo
	@echo 'Now, on the GPU machine (the device tool), from the repository root:'
	@echo '  run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=540)'
	@echo 'Results come back under $$OUT: summary.txt, gpu-check.log, a log per step.'

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# The deployment files (compose.yaml, deploy/nginx.conf, the Dockerfile) checked by Docker Compose,
# nginx and hadolint, installed on first use under build/deploy-tools/ (scripts/deploy_check.sh).
.PHONY: deploy-check
deploy-check:
	bash scripts/deploy_check.sh
