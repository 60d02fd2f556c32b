"""The API key: which operations need it, read from the service's own OpenAPI spec.

An operation changes state when its method is POST, PUT, PATCH or DELETE and it does not
carry ``"x-seqlab-read-only": true``. With ``SEQLAB_API_KEY`` set, each of those answers 401
(a problem with ``WWW-Authenticate: Bearer``) without the key or with a wrong one; reads do
not need the key unless ``SEQLAB_PROTECT_READS`` is also set. ``/health`` and ``/ready``
never need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.demo import XIYOUJI_NAME, XIYOUJI_SAMPLE
from app.settings import Settings
from tests.app.conftest import start_client

KEY = "s3cret"
GOOD = {"Authorization": f"Bearer {KEY}"}
WRONG = {"Authorization": "Bearer not-the-key"}
WRITE_METHODS = {"post", "put", "patch", "delete"}
HTTP_METHODS = WRITE_METHODS | {"get", "head", "options"}
ALWAYS_OPEN = {"/health", "/ready"}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Writes need the key; reads are open. Has the demo model."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("auth"), device="cpu", api_key=KEY)
    client = start_client(settings)
    # The docs' language-model examples name the demo LM, which trains on first start (off in
    # tests): an untrained one with the same vocabulary source answers them as well.
    sample = XIYOUJI_SAMPLE.read_text(encoding="utf-8").splitlines()[:40]
    created = client.post(
        "/models",
        json={"name": XIYOUJI_NAME, "texts": sample, "embedding_dim": 8, "hidden_size": 8},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert created.status_code == 201, created.text
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def spec(secured: TestClient) -> dict[str, Any]:
    response = secured.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


# -- reading the spec ---------------------------------------------------------------------------


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def is_state_changing(method: str, operation: dict[str, Any]) -> bool:
    return method in WRITE_METHODS and operation.get("x-seqlab-read-only") is not True


def state_changing(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in operations(spec) if is_state_changing(op[0], op[2])]


def read_only(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in operations(spec) if not is_state_changing(op[0], op[2])]


def fill_path(path: str, name: str = "lesson-rnn") -> str:
    """Every path parameter gets a valid model name (the only kind of parameter today)."""
    return re.sub(r"\{[^}]+\}", name, path)


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def example_body(spec: dict[str, Any], operation: dict[str, Any]) -> Any:
    """The request body's first example (media type, then schema), or {}."""
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json")
    if media is None:
        return {}
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values()))["value"]
    schema = resolve(spec, media.get("schema", {}))
    if schema.get("examples"):
        return schema["examples"][0]
    return schema.get("example", {})


def call(
    client: TestClient,
    spec: dict[str, Any],
    method: str,
    path: str,
    operation: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Any:
    kwargs: dict[str, Any] = {"headers": dict(headers or {})}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content or (content and "text/plain" not in content):
        kwargs["json"] = example_body(spec, operation)
    elif "text/plain" in content:  # e.g. an upload of a text corpus
        kwargs["content"] = "我爱学习自然语言处理\n我爱机器学习\n".encode()
        kwargs["headers"]["content-type"] = "text/plain; charset=utf-8"
    return client.request(method.upper(), fill_path(path), **kwargs)


def assert_unauthorized(response: Any, label: str) -> dict[str, Any]:
    assert response.status_code == 401, f"{label}: {response.status_code} {response.text}"
    assert response.headers["content-type"].split(";")[0] == PROBLEM, label
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), (
        f"{label}: {response.headers}"
    )
    body = response.json()
    assert body["status"] == 401, label
    assert body["type"] == "urn:seqlab:problem:unauthorized", label
    assert body["title"], label
    assert body["detail"], label
    assert KEY not in response.text, f"{label}: the answer must not echo the key"
    return body


# -- the tests ----------------------------------------------------------------------------------


def test_the_spec_names_the_state_changing_operations(spec: dict[str, Any]) -> None:
    found = {(method, path) for method, path, _ in state_changing(spec)}
    assert found, "no state-changing operation in the spec"
    assert ("post", "/models") in found
    assert ("delete", "/models/{name}") in found
    # Inference POSTs are marked read-only, so they are not in the set.
    assert ("post", "/tokenize") not in found
    assert ("post", "/rnn/forward") not in found


def test_every_state_changing_operation_needs_the_key(
    secured: TestClient, spec: dict[str, Any]
) -> None:
    checked = []
    for method, path, operation in state_changing(spec):
        label = f"{method.upper()} {path}"
        missing = assert_unauthorized(call(secured, spec, method, path, operation), label)
        wrong = assert_unauthorized(call(secured, spec, method, path, operation, WRONG), label)
        assert missing["detail"] != wrong["detail"], "say which: no key, or a wrong one"
        checked.append(label)
    assert "POST /models" in checked
    assert "DELETE /models/{name}" in checked
    # Nothing happened: the example model was not created and the demo was not deleted.
    names = [model["name"] for model in secured.get("/models").json()["models"]]
    assert names == ["lesson-rnn", XIYOUJI_NAME]


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic czNjcmV0", id="basic-scheme"),
        pytest.param(KEY, id="no-scheme"),
        pytest.param("Bearer", id="bearer-without-key"),
        pytest.param(f"Bearer {KEY}x", id="key-with-suffix"),
        pytest.param(f"Bearer {KEY[:-1]}", id="key-prefix"),
        pytest.param(f"Bearer {KEY.upper()}", id="key-other-case"),
    ],
)
def test_malformed_or_wrong_credentials_are_401(secured: TestClient, authorization: str) -> None:
    response = secured.delete("/models/lesson-rnn", headers={"Authorization": authorization})
    assert_unauthorized(response, authorization)


def test_auth_comes_before_validation(secured: TestClient) -> None:
    """A client without the key learns nothing about the body: 401, not 422 or 415."""
    response = secured.post("/models", json={"name": "Not A Name"})
    assert_unauthorized(response, "invalid body")
    response = secured.post("/models", content=b"x", headers={"content-type": "text/plain"})
    assert_unauthorized(response, "text/plain body")
    response = secured.delete("/models/Bad_Name")
    assert_unauthorized(response, "invalid name")


def test_the_right_key_creates_and_deletes(secured: TestClient, spec: dict[str, Any]) -> None:
    body = {**example_body(spec, spec["paths"]["/models"]["post"]), "name": "keyed"}
    created = secured.post("/models", json=body, headers=GOOD)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "keyed"
    assert secured.get("/models/keyed").status_code == 200
    deleted = secured.delete("/models/keyed", headers=GOOD)
    assert deleted.status_code == 204, deleted.text
    assert secured.get("/models/keyed").status_code == 404


def test_reads_and_read_only_posts_need_no_key(secured: TestClient, spec: dict[str, Any]) -> None:
    """Every other operation is answered without a key (reads are not protected)."""
    answered = {}
    for method, path, operation in read_only(spec):
        response = call(secured, spec, method, path, operation)
        label = f"{method.upper()} {path}"
        # Not refused for want of a key; a path parameter filled with "lesson-rnn" may be unknown
        # to a route other than /models/{name} (404), but nothing may fail.
        assert response.status_code not in (401, 403), f"{label}: {response.text}"
        assert response.status_code < 500, f"{label}: {response.text}"
        answered[label] = response.status_code
    # The examples of these routes, and the demo model, answer in full.
    for label in (
        "POST /tokenize",
        "POST /embed",
        "POST /rnn/forward",
        "POST /dataset/preview",
        "POST /predict",
        "POST /generate",
        "POST /score",
        "GET /models",
        "GET /models/{name}",
        "GET /models/{name}/vocab",
        "GET /info",
        "GET /health",
    ):
        assert answered.get(label) == 200, f"{label}: {answered.get(label)}"


def test_protected_operations_declare_security(spec: dict[str, Any]) -> None:
    writes = {(method, path) for method, path, _ in state_changing(spec)}
    schemes = spec["components"]["securitySchemes"]
    bearer = {name for name, scheme in schemes.items() if scheme.get("scheme") == "bearer"}
    assert bearer, schemes
    for method, path, operation in operations(spec):
        label = f"{method.upper()} {path}"
        requirements = operation.get("security") or []
        declared = {name for requirement in requirements for name in requirement}
        if (method, path) in writes:
            assert declared & bearer, f"{label} declares no bearer security: {requirements}"
        else:
            # Reads are open unless protect_reads: the spec says what the settings enforce.
            assert not declared, f"{label} needs no key but declares {declared}"


def test_every_secured_operation_documents_401(spec: dict[str, Any]) -> None:
    undocumented = [
        f"{method.upper()} {path}"
        for method, path, operation in operations(spec)
        if operation.get("security") and "401" not in operation.get("responses", {})
    ]
    assert not undocumented


def test_protect_reads_guards_everything_but_health_and_ready(make_client) -> None:
    client = make_client(api_key=KEY, protect_reads=True)
    spec = client.get("/openapi.json").json()  # the spec itself stays readable
    for method, path, operation in operations(spec):
        label = f"{method.upper()} {path}"
        if path in ALWAYS_OPEN:
            for headers in ({}, WRONG):
                response = call(client, spec, method, path, operation, headers)
                assert response.status_code == 200, f"{label}: {response.text}"
            continue
        assert_unauthorized(call(client, spec, method, path, operation), label)
        assert_unauthorized(call(client, spec, method, path, operation, WRONG), label)
    assert client.get("/models", headers=GOOD).status_code == 200
    answer = client.post("/tokenize", json={"text": "我爱自然语言处理"}, headers=GOOD)
    assert answer.status_code == 200, answer.text
    assert client.get("/info", headers=GOOD).json()["auth"] == {
        "api_key_required_for_writes": True,
        "reads_protected": True,
    }
    # Now every operation but /health and /ready declares the key in the spec.
    for method, path, operation in operations(spec):
        declared = bool(operation.get("security"))
        assert declared == (path not in ALWAYS_OPEN), f"{method.upper()} {path}"


def test_without_a_key_configured_nothing_needs_one(make_client) -> None:
    client = make_client()
    assert client.get("/info").json()["auth"]["api_key_required_for_writes"] is False
    spec = client.get("/openapi.json").json()
    assert not [
        path
        for path, _, operation in [(p, m, o) for m, p, o in operations(spec)]
        if operation.get("security")
    ]
    created = client.post("/models", json={"name": "open", "texts": ["我爱学习"], "seed": 0})
    assert created.status_code == 201, created.text
    assert client.delete("/models/open").status_code == 204
