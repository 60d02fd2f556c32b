"""The operational routes: /health, /ready, /info and /metrics."""

import platform
import time
from importlib.metadata import version

import torch
from fastapi.testclient import TestClient

from app import __version__
from app.main import create_app


def test_health_says_ok(shared_client):
    assert shared_client.get("/health").json() == {"status": "ok"}


def test_info_reports_the_installed_versions_device_limits_and_models(shared_client):
    info = shared_client.get("/info").json()
    assert info["service"] == "seqlab"
    assert info["version"] == __version__
    assert info["python"] == platform.python_version()
    assert info["torch"] == torch.__version__
    assert info["jieba"] == version("jieba")
    assert info["fastapi"] == version("fastapi")
    assert info["device"] == "cpu"
    assert info["limits"]["max_texts"] == 64
    assert info["connections"] == {
        "max_connections": 512,
        "max_header_bytes": 16384,
        "max_headers": 100,
        "max_url_bytes": 8192,
        "header_timeout_seconds": 10.0,
    }
    assert info["jobs"] == {
        "max_running": 1,
        "max_interruptions": 3,
        "may_run_jobs": True,
        "runs_jobs": True,
    }
    assert info["database"]["engine"] == "sqlite"
    assert info["database"]["schema_revision"] == "0002"
    assert info["database"]["notifications"] is None
    assert "lesson-rnn" in info["models_loaded"]


def test_metrics_count_requests_by_route_and_status(shared_client):
    shared_client.post("/tokenize", json={"text": "我爱学习"})
    metrics = shared_client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'seqlab_requests_total{method="POST",route="/tokenize",status="200"}' in text
    assert (
        'seqlab_request_duration_seconds_bucket{le="0.005",method="POST",route="/tokenize"}' in text
    )
    assert 'seqlab_models_loaded{device="cpu"} 1.0' in text
    assert 'seqlab_models{device="cpu"} 1.0' in text


def test_metrics_label_routes_by_template(shared_client):
    shared_client.get("/models/lesson-rnn")
    shared_client.get("/models/nothing-here")
    text = shared_client.get("/metrics").text
    assert 'route="/models/{name}"' in text
    assert "nothing-here" not in text


def test_ready_is_503_until_loaded(make_settings):
    app = create_app(make_settings())
    state = app.state.service
    gate_open = False
    original_warm = state.tokenizers.warm

    def slow_warm():
        while not gate_open:
            time.sleep(0.01)
        return original_warm()

    state.tokenizers.warm = slow_warm
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["jieba"] is False
        refused = client.post("/embed", json={"model": "lesson-rnn", "text": "我"})
        assert refused.status_code == 503
        assert refused.json()["title"] == "Not ready"
        gate_open = True
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/ready").json()["models_loaded"] == 1
