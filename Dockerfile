# seqlab: FastAPI + PyTorch + jieba service.
#
# CPU image (default):
#   docker build -t seqlab:cpu .
# CUDA image (same torch version, CUDA 12.8 wheels; run with --gpus all):
#   docker build -t seqlab:cu128 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# Run:
#   docker run -p 8000:8000 -v seqlab-data:/data seqlab:cpu

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Builder: a self-contained virtual environment at /opt/venv.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# The torch build is chosen by the index it comes from: .../whl/cpu (default, ~200 MB) or
# .../whl/cu128 etc. (multi-GB, bundles the CUDA runtime as nvidia-* wheels).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH="/opt/venv/bin:${PATH}"

RUN python -m venv /opt/venv

# 1) torch first, pinned, from the chosen index only. Installing it on its own means the
#    project's "torch>=2.4,<2.15" is already satisfied in step 2, so pip never resolves
#    torch from PyPI (whose Linux wheel is the multi-GB CUDA build).
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# 2) The project itself (a regular, non-editable install) with the remaining dependencies
#    from PyPI. The constraint pins torch to what step 1 installed ("==2.13.0" also matches
#    the local version "2.13.0+cpu"), so pip fails loudly rather than swapping the build.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app/ app/
COPY models/ models/
RUN --mount=type=cache,target=/root/.cache/pip \
    echo "torch==${TORCH_VERSION}" > /tmp/torch-constraint.txt \
    && pip install --constraint /tmp/torch-constraint.txt . \
    && pip check

# ---------------------------------------------------------------------------
# Runtime: the venv on a clean slim base, running as an unprivileged user.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="seqlab" \
      org.opencontainers.image.description="Self-hosted word-level text-sequence modeling over HTTP: jieba segmentation, vocabularies, embeddings, recurrent layers and next-word language models." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/OWNER/seqlab"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    SEQLAB_DATA_DIR=/data

RUN groupadd --system --gid 10001 seqlab \
    && useradd --system --uid 10001 --gid seqlab \
       --home-dir /home/seqlab --create-home --shell /usr/sbin/nologin seqlab \
    && install -d -o seqlab -g seqlab -m 0750 /data

COPY --from=builder /opt/venv /opt/venv

# An empty working directory: uvicorn puts the cwd on sys.path, and nothing there may shadow
# the installed `app` and `models` packages.
WORKDIR /home/seqlab
# Numeric, so that runtimes enforcing runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

VOLUME ["/data"]
EXPOSE 8000

# No curl in slim images; the standard library is enough. urlopen raises (exit 1) on a
# refused connection, a timeout or any HTTP status >= 400. The start period covers the
# torch import on a cold start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["seqlab", "serve", "--host", "0.0.0.0", "--port", "8000"]
