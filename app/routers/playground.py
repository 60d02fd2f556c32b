"""``GET /``: the playground page, its modules, and plotly.js from the installed ``plotly`` wheel.

The page is plain HTML, CSS and ES modules (``app/playground``), with no build step; every
number it shows comes from the public API. plotly.js (≈4.6 MB) is compressed once, on its first
request, and kept in memory (≈1.4 MB). The page and its modules are revalidated on every load
(``no-cache``, answered 304 while unchanged), so a new release's page never runs old modules.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.errors import NotFoundError

PAGE_DIR = Path(__file__).resolve().parent.parent / "playground"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLES = ("lesson.txt", "xiyouji.txt")
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)


NO_CACHE = {"Cache-Control": "no-cache"}


class RevalidatedFiles(StaticFiles):
    """The page's modules and stylesheet, revalidated on every load (ETag → 304)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(NO_CACHE)
        return response


@cache
def _page_bytes() -> tuple[bytes, str]:
    """The page (10 KB) and its ETag, read once: a release's files do not change under it."""
    content = (PAGE_DIR / "index.html").read_bytes()
    return content, f'"{hashlib.sha256(content).hexdigest()[:20]}"'


@router.get("/")
async def page(request: Request) -> Response:
    """The page itself: revalidated on every load, a 304 while it is unchanged."""
    content, etag = _page_bytes()
    headers = {**NO_CACHE, "ETag": etag}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="text/html; charset=utf-8", headers=headers)


@cache
def _plotly_bytes() -> tuple[bytes, bytes, str]:
    """plotly.js as shipped, gzipped, and its version (for the ETags)."""
    raw = PLOTLY_JS.read_bytes()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0), version("plotly")


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison against an ``If-None-Match`` list (``*``, ``W/"…"``)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get("/playground/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    # A sync route: the one-time compression runs in the thread pool, not on the event loop.
    raw, compressed, plotly_version = _plotly_bytes()
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    # One tag per body: the gzipped and the plain bytes are different representations.
    etag = f'"plotly-{plotly_version}{"-gzip" if gzipped else ""}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(compressed, media_type="text/javascript", headers=headers)
    return Response(raw, media_type="text/javascript", headers=headers)


@router.get("/playground/samples/{name}")
async def sample(name: str) -> FileResponse:
    """The service's own sample texts (``app/samples``), offered as training corpora."""
    if name not in SAMPLES:
        raise NotFoundError(f"no sample {name!r} (samples: {', '.join(SAMPLES)})")
    return FileResponse(SAMPLES_DIR / name, media_type="text/plain; charset=utf-8")


def install_playground(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/playground``."""
    app.include_router(router)
    # After the routes above, so that /playground/vendor and /playground/samples reach them.
    app.mount("/playground", RevalidatedFiles(directory=PAGE_DIR), name="playground")
