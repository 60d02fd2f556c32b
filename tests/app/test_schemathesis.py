"""Property-based tests of the whole OpenAPI spec with schemathesis: no input makes a 5xx.

Every operation of the spec gets generated requests (valid and invalid), sent in-process to a
started, ready app; each response goes through all of schemathesis's default checks: no server
error, a documented status code, content type, headers and body schema, invalid data rejected,
valid data accepted, authentication enforced. Deterministic (``derandomize``), so CI sees the
same examples on every run.

The app runs with an API key and ``protect_reads``: then every operation the spec marks with the
bearer scheme really needs it, and the auth checks have something to verify.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", minversion="4.0")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.openapi.checks import RejectedPositiveData  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

# A safetensors body (the binary form of /rnn/forward) is generated as any binary string: the
# service must answer it with a 4xx problem, never a 5xx.
schemathesis.serializer.alias("application/vnd.safetensors", "application/octet-stream")
# So is a model archive (POST /models/import): any binary string, a 4xx problem for each.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
MAX_EXAMPLES = 30
READY_TIMEOUT = 30.0
API_KEY = "schemathesis-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class WithoutLifespan:
    """The app as schemathesis sees it: requests pass through, the lifespan is not its own.

    schemathesis's pytest plugin ends an ASGI app's lifespan after every test item and starts it
    again for the next one; our app's lifespan runs once (the `started_app` fixture), as under
    uvicorn.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


# The tests are generated when the module is imported, so the app exists then (its data dir and
# registry file); it starts (jieba, registry, demo model) only in the `started_app` fixture.
# (The lazy `schemathesis.pytest.from_fixture` would avoid this, but it fails on pytest 9.2:
# it sets `item._nodeid`, which pytest 9.2 no longer has.)
DATA_DIR = Path(tempfile.mkdtemp(prefix="seqlab-schemathesis-"))
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)
APP = create_app(Settings(data_dir=DATA_DIR, device="cpu", api_key=API_KEY, protect_reads=True))
# The key as schemathesis's own auth for the bearer scheme (not as a header added to every call):
# so it knows which requests it sends without the key, and checks that those get a 401.
CONFIG = SchemathesisConfig.from_dict({"auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}}})
schema = schemathesis.openapi.from_dict(APP.openapi(), config=CONFIG)
schema.app = WithoutLifespan(APP)


@pytest.fixture(scope="module")
def started_app() -> Iterator[TestClient]:
    """Run the app's lifespan once, as uvicorn would, and wait for /ready."""
    with TestClient(APP, headers=AUTH, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + READY_TIMEOUT
        while (ready := client.get("/ready")).status_code != 200:
            assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT}s: {ready.text}"
            time.sleep(0.05)
        yield client


# Rejections that a JSON schema cannot foresee, so a schema-valid request may get them: the
# configured limits (413, published in GET /info, not in the spec), meaning (a token outside the
# vocabulary, shapes that don't fit, a corpus that is not UTF-8) and rules across fields, which
# the request models check in their model validators ("give exactly one of 'text' or 'texts'";
# pydantic reports those at `body`, or at a nested model such as `body.create`, as
# `value_error`). A 422 about one field (a type, a bound, a
# pattern) is still a failure: the spec and the validator disagree. (An integer written `3.0`,
# an integer to JSON Schema, is accepted; "exactly one of" rules are in the spec as `oneOf`.)
SEMANTIC_PROBLEMS = {
    413: {"limit-exceeded"},
    422: {"invalid-input", "invalid-settings", "unknown-token", "unknown-id"},
}


def is_semantic_rejection(status: int, content: bytes) -> bool:
    if status not in SEMANTIC_PROBLEMS:
        return False
    try:
        problem = json.loads(content)
    except ValueError:
        return False
    slug = str(problem.get("type", "")).rsplit(":", 1)[-1]
    if slug in SEMANTIC_PROBLEMS[status]:
        return True
    errors = problem.get("errors") or []
    return (
        slug == "validation"
        and bool(errors)
        # a model validator's rule, at body or a nested model
        and all(e.get("type") == "value_error" for e in errors)
    )


def positive_data_acceptance_except_semantic(ctx, response, case) -> bool | None:
    """schemathesis's `positive_data_acceptance`, except for the rejections above."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if is_semantic_rejection(response.status_code, response.content):
            return None
        raise


# About 25 s for the whole spec on 2 cores (30 examples an operation).
@pytest.mark.slow
@pytest.mark.usefixtures("started_app")
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_spec(case) -> None:
    case.call_and_validate(
        excluded_checks=[positive_data_acceptance],
        additional_checks=[positive_data_acceptance_except_semantic],
    )


# -- integers past int64 -----------------------------------------------------------------------
# Hypothesis rarely draws an unbounded integer past 2**63, where torch seeds, tensors and SQLite
# integers overflow; so each integer of the spec's examples and query parameters is also sent at
# these values, one at a time. The answer may be a 413 or a 422, never a 5xx.
HUGE = (2**63, 2**64)
METHODS = ("get", "put", "post", "patch", "delete")


def resolve_ref(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def integer_slots(spec: dict, node: dict, example: Any, path: tuple = ()) -> Iterator[tuple]:
    """Paths into ``example`` where the schema ``node`` accepts an integer."""
    node = resolve_ref(spec, node)
    for option in node.get("anyOf", [node]):
        option = resolve_ref(spec, option)
        kind = option.get("type")
        if kind == "integer":
            yield path
        elif (kind == "object" or "properties" in option) and isinstance(example, dict):
            for name, child in option.get("properties", {}).items():
                yield from integer_slots(spec, child, example.get(name), (*path, name))
        elif kind == "array" and isinstance(example, list) and example:
            yield from integer_slots(spec, option.get("items", {}), example[0], (*path, 0))


def replaced(example: Any, path: tuple, value: int) -> Any:
    copy = json.loads(json.dumps(example))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def huge_integer_requests(spec: dict) -> Iterator[tuple[str, str, dict]]:
    """(method, path, request kwargs) with one integer of an example set past int64."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            params = operation.get("parameters", [])
            path_values = {
                param["name"]: (param["schema"].get("examples") or ["lesson-rnn"])[0]
                for param in params
                if param["in"] == "path"
            }
            url = path.format(**path_values)
            for param in params:
                if param["in"] == "query" and any(integer_slots(spec, param["schema"], 0)):
                    for value in HUGE:
                        yield method, path, {"url": url, "params": {param["name"]: value}}
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            body_schema = resolve_ref(spec, content["application/json"]["schema"])
            for example in body_schema.get("examples", []):
                for slot in integer_slots(spec, body_schema, example):
                    for value in HUGE:
                        yield method, path, {"url": url, "json": replaced(example, slot, value)}


def test_integers_past_int64_are_not_server_errors(started_app: TestClient) -> None:
    requests = list(huge_integer_requests(APP.openapi()))
    assert requests, "no integer in the spec's examples and query parameters"
    failures = []
    for method, path, kwargs in requests:
        response = started_app.request(method.upper(), **kwargs)
        if response.status_code >= 500:
            sent = {key: value for key, value in kwargs.items() if key != "url"}
            failures.append(f"{method.upper()} {path} {sent} -> {response.status_code}")
    assert not failures, "\n".join(failures)
