"""The model registry itself: publishing, deleting, and keeping up with another process.

Two :class:`ModelRegistry` instances over one data dir stand for two processes (the service
and ``seqlab train``): what one publishes or deletes, the other sees after ``sync()``. The
restart tests start the whole service twice over one data dir (``load()`` at start-up).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import insert

from app.database import Database
from app.errors import ConflictError, NotFoundError
from app.layout import DataLayout
from app.registry import LoadedModel, ModelRegistry
from app.schema import versions
from app.tokenizers import TokenizerCache
from models.errors import CheckpointError
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import TokenizerConfig
from models.vocab import Vocab
from tests.app.conftest import LESSON_MODEL, start_client

MakeRegistry = Callable[[], ModelRegistry]
VOCAB = Vocab(["我", "爱", "学习"], specials=[])


@pytest.fixture
def engine_url(database_url: str | None) -> str | None:
    """Every test of this module runs on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def make_registry(layout: DataLayout, jieba_cache_dir: Path) -> Iterator[MakeRegistry]:
    """Loaded registries over the same data dir, as separate processes would open it."""
    tokenizers = TokenizerCache(jieba_cache_dir)
    registries: list[ModelRegistry] = []

    def factory() -> ModelRegistry:
        registry = ModelRegistry(layout, torch.device("cpu"), tokenizers)
        registry.load()
        registries.append(registry)
        return registry

    yield factory
    for registry in registries:
        registry.close()


def tiny_model(seed: int) -> RNNLanguageModel:
    torch.manual_seed(seed)
    config = LanguageModelConfig(vocab_size=len(VOCAB), embedding_dim=2, hidden_size=3, cell="rnn")
    return RNNLanguageModel(config)


def publish(
    registry: ModelRegistry, name: str = "lesson", *, create: bool, seed: int = 0, **kwargs
) -> LoadedModel:
    return registry.publish(
        name, tiny_model(seed), VOCAB, TokenizerConfig(), create=create, **kwargs
    )


def same_weights(a: RNNLanguageModel, b: RNNLanguageModel) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


# -- publish and delete in one process -----------------------------------------------------------


def test_a_published_version_is_served_read_only(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    loaded = publish(registry, create=True, metrics={"val_loss": 1.5}, source={"kind": "test"})
    assert registry.get("lesson") is loaded
    assert loaded.label == "lesson@1"
    assert loaded.metrics == {"val_loss": 1.5}
    assert loaded.source == {"kind": "test"}
    assert loaded.vocab.tokens == VOCAB.tokens
    assert same_weights(loaded.model, tiny_model(0))
    assert not loaded.model.training
    assert not any(parameter.requires_grad for parameter in loaded.model.parameters())
    assert (registry.path("lesson", 1) / "model.safetensors").is_file()


def test_publishing_again_adds_a_version_and_keeps_the_old_one(
    make_registry: MakeRegistry,
) -> None:
    registry = make_registry()
    publish(registry, create=True, seed=0)
    second = publish(registry, create=False, seed=1)
    assert second.version == 2
    assert registry.get("lesson") is second
    assert [row.version for row in registry.versions("lesson")] == [1, 2]
    pinned = registry.get("lesson", 1)
    assert pinned.version == 1
    assert same_weights(pinned.model, tiny_model(0))


def test_creating_a_model_that_exists_is_a_conflict(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    publish(registry, create=True)
    with pytest.raises(ConflictError, match="lesson"):
        publish(registry, create=True, seed=1)
    assert [row.version for row in registry.versions("lesson")] == [1]


def test_a_new_version_of_an_unknown_model_is_not_found(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    with pytest.raises(NotFoundError, match="nothing"):
        publish(registry, "nothing", create=False)
    assert registry.names() == []


def test_delete_forgets_the_model_and_its_files(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    publish(registry, create=True)
    registry.delete("lesson")
    with pytest.raises(NotFoundError):
        registry.get("lesson")
    assert not (registry.models_dir / "lesson").exists()
    with pytest.raises(NotFoundError):
        registry.delete("lesson")


# -- sync(): another process on the same data dir ------------------------------------------------


def test_sync_with_nothing_changed_returns_nothing(make_registry: MakeRegistry) -> None:
    service = make_registry()
    assert service.sync() == []
    publish(service, create=True)  # its own publish is no change to catch up with
    assert service.sync() == []
    assert service.sync() == []


def test_sync_loads_a_model_another_process_created(make_registry: MakeRegistry) -> None:
    service, trainer = make_registry(), make_registry()
    publish(trainer, create=True, metrics={"val_loss": 2.0})
    with pytest.raises(NotFoundError):
        service.get("lesson")
    assert service.sync() == ["lesson@1"]
    loaded = service.get("lesson")
    assert loaded.version == 1
    assert loaded.metrics == {"val_loss": 2.0}
    assert same_weights(loaded.model, tiny_model(0))
    assert service.sync() == []


def test_sync_loads_the_next_version_another_process_published(
    make_registry: MakeRegistry,
) -> None:
    service, trainer = make_registry(), make_registry()
    publish(trainer, create=True, seed=0)
    assert service.sync() == ["lesson@1"]
    publish(trainer, create=False, seed=1, metrics={"val_loss": 0.5})
    assert service.get("lesson").version == 1  # until it syncs
    assert service.sync() == ["lesson@2"]
    latest = service.get("lesson")
    assert latest.version == 2
    assert latest.metrics == {"val_loss": 0.5}
    assert same_weights(latest.model, tiny_model(1))
    assert same_weights(service.get("lesson", 1).model, tiny_model(0))


def test_sync_does_not_see_a_version_still_being_written(make_registry: MakeRegistry) -> None:
    service, trainer = make_registry(), make_registry()
    publish(trainer, create=True)
    assert service.sync() == ["lesson@1"]
    # The trainer has reserved the next version and a new model but not marked them ready.
    assert trainer.index.reserve_version("lesson", create=False, source={}) == 2
    trainer.index.reserve_version("fresh", create=True, source={})
    half_written = trainer.path("lesson", 2)
    half_written.mkdir(parents=True)
    (half_written / "model.safetensors").write_bytes(b"partial")
    assert service.sync() == []
    assert service.get("lesson").version == 1
    assert service.names() == ["lesson"]
    with pytest.raises(NotFoundError, match="no version 2"):
        service.get("lesson", 2)


def test_sync_forgets_a_model_another_process_deleted(make_registry: MakeRegistry) -> None:
    service, trainer = make_registry(), make_registry()
    publish(trainer, create=True, seed=0)
    publish(trainer, create=False, seed=1)
    assert service.sync() == ["lesson@2"]
    assert service.get("lesson", 1).version == 1  # a pinned version, cached
    trainer.delete("lesson")
    assert service.sync() == ["-lesson"]
    assert service.names() == []
    with pytest.raises(NotFoundError, match="does not exist"):
        service.get("lesson")
    with pytest.raises(NotFoundError):
        service.get("lesson", 1)
    assert service.sync() == []


def test_sync_sees_a_model_deleted_and_created_again(make_registry: MakeRegistry) -> None:
    service, trainer = make_registry(), make_registry()
    publish(trainer, create=True, seed=0)
    publish(trainer, create=False, seed=1)
    service.sync()
    trainer.delete("lesson")
    publish(trainer, create=True, seed=2)
    # The new model's version 1 has a lower number than the deleted model's version 2 that the
    # service holds: the service must still serve the new model, not the deleted one.
    changes = service.sync()
    assert "lesson@1" in changes
    loaded = service.get("lesson")
    assert loaded.version == 1
    assert same_weights(loaded.model, tiny_model(2))


# -- load(): a restart of the whole service ------------------------------------------------------


def test_restart_keeps_models_versions_and_vectors(make_settings):
    settings = make_settings()
    first = start_client(settings)
    try:
        first.post("/models", json=LESSON_MODEL)
        before = first.get("/models/lesson").json()
        vectors = first.post("/embed", json={"model": "lesson", "text": "我爱学习"}).json()
    finally:
        first.__exit__(None, None, None)
    second = start_client(settings)
    try:
        after = second.get("/models/lesson").json()
        assert after["version"] == before["version"]
        assert after["created_at"] == before["created_at"]
        again = second.post("/embed", json={"model": "lesson", "text": "我爱学习"}).json()
        assert again["vectors"] == vectors["vectors"]
        assert {m["name"] for m in second.get("/models").json()["models"]} == {
            "lesson-rnn",
            "lesson",
        }
    finally:
        second.__exit__(None, None, None)


def test_an_interrupted_version_is_swept_at_start(make_settings):
    settings = make_settings()
    first = start_client(settings)
    first.post("/models", json=LESSON_MODEL)
    first.__exit__(None, None, None)
    # Simulate a crash between reserving version 2 and marking it ready.
    database = Database(settings.layout.database)
    database.execute(
        insert(versions).values(name="lesson", version=2, status="pending", created_at="x")
    )
    database.close()
    half_written = settings.layout.models / "lesson" / "v2"
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"partial")
    second = start_client(settings)
    try:
        info = second.get("/models/lesson").json()
        assert info["version"] == 1
        assert info["versions"] == [1]
        assert not half_written.exists()
    finally:
        second.__exit__(None, None, None)


def test_sync_drops_pinned_versions_of_a_model_created_again_past_its_old_version(
    make_registry: MakeRegistry,
) -> None:
    service, trainer = make_registry(), make_registry()
    publish(trainer, create=True, seed=0)
    publish(trainer, create=False, seed=1)
    service.sync()
    assert same_weights(service.get("lesson", 1).model, tiny_model(0))  # pinned: the old v1
    trainer.delete("lesson")
    for seed, create in ((3, True), (4, False), (5, False)):  # the new model reaches v3
        publish(trainer, create=create, seed=seed)
    assert "lesson@3" in service.sync()
    assert same_weights(service.get("lesson").model, tiny_model(5))
    assert same_weights(service.get("lesson", 1).model, tiny_model(3))


# -- loading on demand -------------------------------------------------------------------------


def slow_loads(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make the registry's next loads wait, once read from disk, for the second event; the
    first is set when a load has got that far."""
    reading, release = threading.Event(), threading.Event()
    original = registry._load_version

    def waiting(row):
        loaded = original(row)
        reading.set()
        assert release.wait(10)
        return loaded

    monkeypatch.setattr(registry, "_load_version", waiting)
    return reading, release


def test_a_model_deleted_while_it_loads_is_never_kept(
    make_registry: MakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(make_registry(), create=True)
    registry = make_registry()  # a second process: nothing loaded yet
    assert not registry.is_loaded("lesson")
    reading, release = slow_loads(registry, monkeypatch)
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(registry.get("lesson")))
    reader.start()
    assert reading.wait(10)  # the load is under way: the deletion comes in the middle of it
    deleter = threading.Thread(target=registry.delete, args=("lesson",))
    deleter.start()
    release.set()
    reader.join(10)
    deleter.join(10)
    assert registry.names() == []
    assert len(outcome) == 1  # the reader was served the version it asked for...
    assert registry.loaded_versions() == []  # ...which was not kept
    with pytest.raises(NotFoundError):
        registry.get("lesson")


def test_a_model_made_anew_while_its_old_self_loads_serves_the_new_one(
    make_registry: MakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(make_registry(), create=True, seed=0)
    registry = make_registry()
    reading, release = slow_loads(registry, monkeypatch)
    reader = threading.Thread(target=lambda: registry.get("lesson"))
    reader.start()
    assert reading.wait(10)
    registry.delete("lesson")
    monkeypatch.undo()  # the new model's load is not held back
    release.set()
    reader.join(10)
    fresh = publish(registry, create=True, seed=1)
    assert registry.get("lesson") is fresh
    assert same_weights(registry.get("lesson").model, tiny_model(1))
    assert registry.loaded_versions() == [("lesson@1", registry.memory_used())]


def test_sync_goes_on_past_a_version_that_cannot_be_loaded(make_registry: MakeRegistry) -> None:
    writer, reader = make_registry(), make_registry()
    for name in ("aaa", "zzz"):
        publish(writer, name, create=True)
    reader.sync()
    reader.get("aaa")  # loaded: a newer version is loaded at once when it is synced
    publish(writer, "aaa", create=False, seed=1)
    publish(writer, "zzz", create=False, seed=1)
    (writer.path("aaa", 2) / "model.safetensors").write_bytes(b"damaged")
    assert reader.sync() == ["aaa@2", "zzz@2"]  # zzz, after the damaged one, is synced too
    assert reader.get("zzz").version == 2
    with pytest.raises(CheckpointError):
        reader.get("aaa")  # asking says why
