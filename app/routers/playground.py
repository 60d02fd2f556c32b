"""``GET /``: the playground page, its modules, and plotly.js from the installed ``plotly`` wheel.

The page is plain HTML, CSS and ES modules (``app/playground``), with no build step; every
number it shows comes from the public API. plotly.js (≈4.6 MB) is compressed once, on the
first request that accepts gzip, and kept in memory (≈1.4 MB).
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.errors import NotFoundError

PAGE_DIR = Path(__file__).resolve().parent.parent / "playground"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLES = ("lesson.txt", "xiyouji.txt")
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    # Revalidated on every load: a new release's page is never mixed with old modules.
    return FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@cache
def _plotly_bytes() -> tuple[bytes, bytes, str]:
    raw = PLOTLY_JS.read_bytes()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0), f'"plotly-{version("plotly")}"'


@router.get("/playground/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    # A sync route: the one-time compression runs in the thread pool, not on the event loop.
    raw, compressed, etag = _plotly_bytes()
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
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
    app.include_router(router)
    # After the routes above, so that /playground/vendor and /playground/samples reach them.
    app.mount("/playground", StaticFiles(directory=PAGE_DIR), name="playground")
