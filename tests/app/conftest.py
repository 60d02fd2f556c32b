"""An app over a temp data dir, started for real (lifespan, jieba, registry, demo model)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.layout import DataLayout
from app.main import create_app
from app.settings import Settings


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"the service was not ready in {timeout}s: {client.get('/ready').json()}")


def start_client(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    wait_ready(client)
    return client


@pytest.fixture
def engine_url() -> str | None:
    """The database of the settings the tests make: the SQLite file by default. A module that
    runs on both engines overrides this fixture with ``database_url`` (tests/postgres.py)."""
    return None


@pytest.fixture
def layout(tmp_path: Path, engine_url: str | None) -> DataLayout:
    """The data dir (and database) of a test that opens the stores without a service."""
    return DataLayout(tmp_path / "data", engine_url)


@pytest.fixture
def make_settings(tmp_path: Path, engine_url: str | None):
    """Settings over a fresh temp data dir; keyword arguments override."""

    def factory(**overrides) -> Settings:
        values = {
            "data_dir": tmp_path / "data",
            "device": "cpu",
            "database_url": engine_url,
            **overrides,
        }
        return Settings(**values)

    return factory


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator:
    """Start ``seqlab serve`` processes over a temp data dir with SEQLAB_* settings; all are
    stopped at the end of the test."""
    from tests.app.service_process import ServiceProcess

    services: list[ServiceProcess] = []

    def factory(settings: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(tmp_path / "data", settings).start()
        services.append(service)
        return service

    yield factory
    for service in services:
        service.stop()


@pytest.fixture
def make_client(make_settings) -> Iterator:
    """Start apps on demand; all are shut down at the end of the test."""
    clients: list[TestClient] = []

    def factory(**overrides) -> TestClient:
        client = start_client(make_settings(**overrides))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    """A ready service with the demo model."""
    return make_client()


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One ready service for a whole module of read-only tests."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), device="cpu")
    client = start_client(settings)
    yield client
    client.__exit__(None, None, None)


LESSON_MODEL = {
    "name": "lesson",
    "texts": ["我爱学习自然语言处理", "我爱机器学习"],
    "vocab": {"specials": []},
    "embedding_dim": 4,
    "hidden_size": 5,
    "num_layers": 2,
    "cell": "rnn",
    "seed": 0,
}
