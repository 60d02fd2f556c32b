"""Schema migrations: a data dir made before Alembic upgrades in place and serves as before; the
migrations make exactly the tables :mod:`app.schema` describes, on both engines; processes that
start at once migrate once.

``tests/data/before-alembic`` is a data dir made by commit 578fb8e (the last release with the
hand-written SQLite schema) with ``made_by.py.txt``: a model ``poems`` (v1 made by ``POST
/models``, v2 by a training job from an uploaded corpus), and the answers that release gave
(``expected.json``). PostgreSQL is new with the migrations, so no older PostgreSQL database
exists to upgrade.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from app.cli import main
from app.database import Database, schema_revision
from app.schema import metadata
from tests.app.conftest import start_client
from tests.conftest import REPO_ROOT

OLD = Path(__file__).resolve().parent.parent / "data" / "before-alembic"
EXPECTED = json.loads((OLD / "expected.json").read_text(encoding="utf-8"))
TEXTS = ["我爱学习自然语言处理", "我爱机器学习", "今天天气很好", "我们一起学习语言模型"]
HEAD = "0002"


def without_volatile(answer: dict) -> dict:
    """An answer without what differs between two runs of one release (load state, timing)."""
    return {key: value for key, value in answer.items() if key not in ("loaded", "device")}


def assert_same_answers(client) -> None:
    for version in ("1", "2"):
        expected = EXPECTED["answers"][version]
        predicted = client.post(
            "/predict", json={"model": "poems", "version": int(version), "text": "我爱", "k": 5}
        ).json()
        assert predicted["ids"] == expected["predict"]["ids"]
        assert [c["id"] for c in predicted["candidates"]] == [
            c["id"] for c in expected["predict"]["candidates"]
        ]
        assert [c["probability"] for c in predicted["candidates"]] == pytest.approx(
            [c["probability"] for c in expected["predict"]["candidates"]], abs=1e-6
        )
        scored = client.post(
            "/score", json={"model": "poems", "version": int(version), "texts": TEXTS}
        ).json()
        assert scored["perplexity"] == pytest.approx(expected["score"]["perplexity"], rel=1e-6)
        for got, want in zip(scored["scores"], expected["score"]["scores"], strict=True):
            assert got["ids"] == want["ids"]
            assert got["log_probs"] == pytest.approx(want["log_probs"], abs=1e-5)


def test_a_data_dir_made_before_migrations_upgrades_in_place_and_answers_the_same(
    make_settings, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(OLD / "data", data)
    settings = make_settings(data_dir=data, create_demo_model=False)
    assert schema_revision(Database(settings.layout.database)) is None  # never migrated
    for start in range(2):  # migrated on the first start; the second finds nothing to do
        client = start_client(settings)
        try:
            assert client.get("/info").json()["database"]["schema_revision"] == HEAD
            assert_same_answers(client)
            (model,) = client.get("/models").json()["models"]
            (expected,) = EXPECTED["models"]["models"]
            assert without_volatile(model) == without_volatile(expected)
            assert client.get("/models/poems/versions").json() == EXPECTED["versions"]
            job = client.get(f"/train/{EXPECTED['job_id']}").json()
            assert job == EXPECTED["job"]
            assert client.get("/corpora").json() == EXPECTED["corpora"]
            if start == 0:
                continue
            # And it goes on working: a new version, recorded in the migrated tables.
            trained = client.post(
                "/train",
                json={
                    "model": "poems",
                    "corpus_id": EXPECTED["corpus_id"],
                    "epochs": 1,
                    "seq_len": 4,
                    "batch_size": 2,
                    "wait": True,
                },
            ).json()
            assert trained["status"] == "succeeded", trained
        finally:
            client.__exit__(None, None, None)


def test_the_migrations_make_the_tables_the_stores_query(database_url: str | None, tmp_path):
    database = Database(database_url or tmp_path / "fresh.sqlite3")
    try:
        database.migrate()
        assert schema_revision(database) == HEAD
        inspector = inspect(database.engine)
        made = {
            table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }
        described = {
            table.name: {column.name for column in table.columns}
            for table in metadata.sorted_tables
        }
        assert made == described
    finally:
        database.close()


def test_processes_starting_at_once_migrate_once(database_url: str | None, tmp_path: Path):
    target = database_url or str(tmp_path / "shared.sqlite3")
    program = (
        "import sys; from pathlib import Path; from app.database import Database; "
        "target = sys.argv[1]; "
        "Database(target if '://' in target else Path(target)).migrate()"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", program, target],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
    database = Database(target if "://" in target else Path(target))
    try:
        assert schema_revision(database) == HEAD
    finally:
        database.close()


def test_seqlab_migrate_upgrades_an_old_data_dir_once(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(OLD / "data", data)
    assert main(["migrate", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"schema {HEAD} (migrated from none)")
    assert main(["migrate", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"schema {HEAD} (already current)")


def test_seqlab_migrate_says_in_one_line_that_the_database_is_out_of_reach(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("SEQLAB_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["migrate", "--data-dir", str(tmp_path / "data")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("seqlab: the database cannot be reached: connection failed")
