import time

from fastapi.testclient import TestClient

from app.main import create_app


def test_health_info_and_metrics(shared_client):
    assert shared_client.get("/health").json() == {"status": "ok"}
    info = shared_client.get("/info").json()
    assert info["service"] == "seqlab"
    assert info["device"] == "cpu"
    assert info["jieba"] == "0.42.1"
    assert info["limits"]["max_texts"] == 64
    assert "demo" in info["models_loaded"]
    shared_client.post("/tokenize", json={"text": "我爱学习"})
    metrics = shared_client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'seqlab_requests_total{method="POST",route="/tokenize",status="200"}' in text
    assert (
        'seqlab_request_duration_seconds_bucket{le="0.005",method="POST",route="/tokenize"}' in text
    )
    assert "seqlab_models_loaded 1.0" in text


def test_metrics_label_routes_by_template(shared_client):
    shared_client.get("/models/demo")
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
        refused = client.post("/embed", json={"model": "demo", "text": "我"})
        assert refused.status_code == 503
        assert refused.json()["title"] == "Not ready"
        gate_open = True
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/ready").json()["models_loaded"] == 1


def test_every_error_status_of_a_route_is_documented(shared_client):
    spec = shared_client.get("/openapi.json").json()
    embed = spec["paths"]["/embed"]["post"]["responses"]
    assert {"404", "413", "415", "422"} <= set(embed)
    assert "application/problem+json" in embed["404"]["content"]
    create = spec["paths"]["/models"]["post"]["responses"]
    assert {"201", "409", "413", "415", "422"} <= set(create)
    # No API key is configured here, so no route can answer 401 and none documents it.
    assert "401" not in create
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "post":
                content = operation["requestBody"]["content"]
                if "application/json" in content:
                    schema = content["application/json"]["schema"]
                    assert "$ref" in schema, f"{method} {path} has no request schema"
                else:  # an upload: text/plain or a multipart file
                    assert {"text/plain", "multipart/form-data"} <= set(content)
