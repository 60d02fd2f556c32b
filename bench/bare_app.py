"""The baseline server of ``bench.http``: bare FastAPI endpoints with canned answers.

Each route is an ``async def`` POST handler that reads and parses the JSON body
(``await request.json()``) and returns the bytes, status and headers that seqlab gave to the
same request, recorded before the run. So the baseline pays for what any FastAPI endpoint
must (uvicorn, routing, reading and parsing the body, sending an answer of the same size) and
nothing else: no validation model, no dependencies, no middleware, no computation.

Served by ``uvicorn --factory bench.bare_app:create_app``; the canned answers come from the
JSON file named by ``BENCH_BARE_RESPONSES``: ``{path: {"status": int, "headers": {name:
value}, "body": str}}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response

RESPONSES_VARIABLE = "BENCH_BARE_RESPONSES"


def _route(status: int, headers: dict[str, str], body: bytes) -> Any:
    async def handler(request: Request) -> Response:
        payload = await request.json()
        if not isinstance(payload, dict):  # the same body seqlab got; never taken in the bench
            return Response(status_code=422)
        return Response(content=body, status_code=status, headers=headers)

    return handler


def create_app() -> FastAPI:
    canned: dict[str, dict[str, Any]] = json.loads(
        Path(os.environ[RESPONSES_VARIABLE]).read_text(encoding="utf-8")
    )
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    for path, answer in canned.items():
        handler = _route(answer["status"], answer["headers"], answer["body"].encode("utf-8"))
        app.add_api_route(path, handler, methods=["POST"])
    return app
