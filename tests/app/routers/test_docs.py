"""``/docs`` (Swagger UI) and ``/redoc`` render every operation in a real browser, offline.

A real uvicorn server runs in a subprocess; Debian's headless Chromium loads the pages with every
host but localhost unresolvable, so an asset fetched from a CDN would leave the page blank.
Skipped when no Chromium is installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.app.browser import find_chromium
from tests.conftest import REPO_ROOT

STARTUP_TIMEOUT = 30.0
BROWSER_TIMEOUT = 60.0
# The operations the lesson is about; every other operation of the spec is checked too.
KEY_PATHS = ("/tokenize", "/rnn/forward", "/embed")


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium (Debian: apt-get install -y chromium)"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    def __init__(self, base_url: str, process: subprocess.Popen, log: Path) -> None:
        self.base_url = base_url
        self.process = process
        self.log = log

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.base_url + path)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"uvicorn exited with {server.process.returncode}:\n{server.log.read_text()}"
            )
        try:
            if server.get("/ready")[0] == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    pytest.fail(f"the service was not ready in {STARTUP_TIMEOUT}s:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docs-server")
    port = free_port()
    # Only our settings: a SEQLAB_* of the caller (an API key, limits) must not leak in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEQLAB_")}
    env |= {"SEQLAB_DATA_DIR": str(tmp / "data"), "SEQLAB_DEVICE": "cpu"}
    log = tmp / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as log_file:
        # Its own process group, so that stopping it also stops any child it started.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def spec(server: Server) -> dict:
    status, body = server.get("/openapi.json")
    assert status == 200
    return json.loads(body)


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]


def render(url: str) -> str:
    """The DOM of ``url`` after its scripts ran, with every host but localhost unreachable."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="seqlab-chromium-") as profile:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            # No network: a name other than localhost does not resolve, as on an offline machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip(), f"Chromium dumped nothing:\n{result.stderr[-4000:]}"
    return result.stdout


class AssetLinks(HTMLParser):
    """``src`` of scripts and images, ``href`` of links: what a page makes the browser fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "img": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def asset_urls(html: str) -> list[str]:
    parser = AssetLinks()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_assets_are_served_by_the_service(server: Server, page: str) -> None:
    status, body = server.get(page)
    assert status == 200
    html = body.decode()
    assert "cdn" not in html.lower()
    assert not re.search(r"""https?://""", html), "the page names an external URL"
    urls = asset_urls(html)
    assert any(url.endswith(".js") for url in urls), urls
    for url in urls:
        assert url.startswith("/"), f"{url} is not served by the service"
        status, content = server.get(url)
        assert status == 200, url
        assert content, url


def test_swagger_ui_renders_every_operation(server: Server, spec: dict) -> None:
    dom = render(server.base_url + "/docs")
    assert "swagger-ui" in dom
    assert 'class="errors-wrapper"' not in dom, "Swagger UI reports errors loading the spec"
    blocks = re.findall(r'class="opblock opblock-(\w+)', dom)
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    for path in KEY_PATHS:
        assert path in rendered, f"{path} is not rendered by Swagger UI"
    expected = operations(spec)
    assert {path for _, path, _ in expected} <= rendered
    assert sorted(blocks) == sorted(method for method, _, _ in expected)


def test_redoc_renders_every_operation(server: Server, spec: dict) -> None:
    dom = render(server.base_url + "/redoc")
    assert "Something went wrong" not in dom, "ReDoc failed to render the spec"
    for method, path, operation in operations(spec):
        assert f"/operation/{operation['operationId']}" in dom, (method, path)
        assert operation["summary"] in dom, (method, path)
    for path in KEY_PATHS:
        assert path in dom, f"{path} is not rendered by ReDoc"
