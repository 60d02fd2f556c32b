"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A throwaway PostgreSQL server and the `database_url` fixture over both engines.
pytest_plugins = ["tests.postgres"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

LESSON_TEXTS = ["我爱学习自然语言处理", "我爱机器学习"]
LESSON_VOCAB = ["我", "爱", "学习", "自然语言", "处理", "机器"]
LESSON_IDS = [0, 1, 3, 4, 0, 1, 5, 2]


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or a clean skip where the folder is absent."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} is not available on this machine")
    return path


@pytest.fixture(scope="session")
def hongloumeng_lines() -> list[str]:
    path = shared_file("zh-classics/hongloumeng.txt")
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def jieba_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jieba-cache")


# The demo language model trains for a minute on first start; tests that want it say so.
os.environ.setdefault("SEQLAB_TRAIN_DEMO_MODEL", "false")
# Segmentation worker processes load jieba's dictionary each (~1 s of CPU): the many services
# the suite starts segment in threads; tests of the pool (test_segmentation_pool) ask for one.
os.environ.setdefault("SEQLAB_SEGMENTATION_PROCESSES", "1")
