"""A fresh SQLite store created from the snapshot equals one its migrations built
(services/common/schema_snapshot.py), and every other database still goes through Alembic."""

from __future__ import annotations

import importlib
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlgrid_services.common import schema_snapshot
from mlgrid_services.common.sql import (
    _alembic_upgrade,
    current_revision,
    make_engine,
    write_transaction,
)
from mlgrid_services.tracking import migrations as tracking_migrations


def _contents(path: Path) -> tuple[list[tuple[str, str, str]], dict[str, list[tuple[Any, ...]]]]:
    """Every schema object's SQL, and every table's rows (timestamps left out)."""
    with sqlite3.connect(path) as conn:
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        rows = {}
        for _, name, _ in objects:
            if _ != "table":
                continue
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info('{name}')")]
            kept = [c for c in columns if not c.endswith("_time")]
            rows[name] = conn.execute(f'SELECT {", ".join(kept)} FROM "{name}"').fetchall()
    return objects, rows


def _alembic_only(uri: str, script_location: Path, version_table: str) -> None:
    """The migrations replayed by Alembic, as before the snapshot."""
    engine = make_engine(uri)
    with write_transaction(engine) as conn:
        _alembic_upgrade(conn, script_location, version_table, "head")
    engine.dispose()


@pytest.mark.parametrize("module", schema_snapshot.SERVICES)
def test_the_kept_snapshot_is_what_the_migrations_build_now(module: str) -> None:
    migrations = importlib.import_module(module)
    kept = (Path(migrations.SCRIPT_LOCATION) / schema_snapshot.FILE_NAME).read_text()

    def replay(engine: Any) -> None:
        with write_transaction(engine) as conn:
            _alembic_upgrade(conn, migrations.SCRIPT_LOCATION, migrations.VERSION_TABLE, "head")

    built = schema_snapshot.migrated_dump(
        replay, migrations.SCRIPT_LOCATION, migrations.VERSION_TABLE
    )
    assert kept == built, (
        f"{module}'s {schema_snapshot.FILE_NAME} is stale: run "
        "python -m mlgrid_services.common.schema_snapshot"
    )


@pytest.mark.parametrize("module", schema_snapshot.SERVICES)
def test_a_store_created_from_the_snapshot_equals_a_migrated_one(
    module: str, tmp_path: Path
) -> None:
    migrations = importlib.import_module(module)
    before = int(time.time() * 1000)
    migrations.upgrade(f"sqlite:///{tmp_path / 'snapshot.db'}")
    after = int(time.time() * 1000)
    _alembic_only(
        f"sqlite:///{tmp_path / 'alembic.db'}", migrations.SCRIPT_LOCATION, migrations.VERSION_TABLE
    )
    assert _contents(tmp_path / "snapshot.db") == _contents(tmp_path / "alembic.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'snapshot.db'}")
    migrated = make_engine(f"sqlite:///{tmp_path / 'alembic.db'}")
    head = current_revision(migrated, migrations.VERSION_TABLE)
    migrated.dispose()
    assert head is not None and current_revision(engine, migrations.VERSION_TABLE) == head
    # Alembic agrees that the snapshot's database is at head: nothing left to run.
    with write_transaction(engine) as conn:
        _alembic_upgrade(conn, migrations.SCRIPT_LOCATION, migrations.VERSION_TABLE, "head")
    engine.dispose()
    assert _contents(tmp_path / "snapshot.db") == _contents(tmp_path / "alembic.db")
    if module == tracking_migrations.__name__:
        # The Default experiment was created when the store was, as the migration creates it.
        with sqlite3.connect(tmp_path / "snapshot.db") as conn:
            created = conn.execute(
                "SELECT creation_time, last_update_time FROM experiments WHERE experiment_id = 0"
            ).fetchone()
        assert before - 1000 <= created[0] == created[1] <= after + 1000


def test_an_older_store_is_migrated_by_alembic_to_the_same_schema(tmp_path: Path) -> None:
    old = f"sqlite:///{tmp_path / 'old.db'}"
    tracking_migrations.upgrade(old, "0003_metric_points_once")
    tracking_migrations.upgrade(old)  # the snapshot does not apply: Alembic continues
    _alembic_only(
        f"sqlite:///{tmp_path / 'alembic.db'}",
        tracking_migrations.SCRIPT_LOCATION,
        tracking_migrations.VERSION_TABLE,
    )
    old_objects, old_rows = _contents(tmp_path / "old.db")
    new_objects, new_rows = _contents(tmp_path / "alembic.db")
    assert {(t, n) for t, n, _ in old_objects} == {(t, n) for t, n, _ in new_objects}
    assert old_rows == new_rows


def test_a_snapshot_older_than_its_migrations_is_not_used(tmp_path: Path) -> None:
    copied = tmp_path / "migrations"
    shutil.copytree(tracking_migrations.SCRIPT_LOCATION, copied)
    assert schema_snapshot.read(copied) is not None
    (copied / "versions" / "0006_new.py").write_text("revision = '0006_new'\n")
    assert schema_snapshot.read(copied) is None


def test_a_partial_schema_without_its_version_row_is_left_to_alembic(tmp_path: Path) -> None:
    snapshot = schema_snapshot.read(tracking_migrations.SCRIPT_LOCATION)
    assert snapshot is not None
    engine = make_engine(f"sqlite:///{tmp_path / 'partial.db'}")
    with write_transaction(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY)")
        assert schema_snapshot.apply(conn, snapshot, tracking_migrations.VERSION_TABLE) is False
    engine.dispose()


_REOPEN = """
import sys
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore
SqlTrackingStore(sys.argv[1], "file:///tmp/unused").close()
SqlRegistryStore(sys.argv[1]).close()
print("alembic" in sys.modules)
"""


@pytest.mark.parametrize("server", ["postgres", "mysql"])
def test_a_server_database_at_head_is_opened_without_alembic(
    server: str, request: pytest.FixtureRequest
) -> None:
    # The first start migrates with Alembic; every later one reads the version rows, finds the
    # snapshot's revision and leaves Alembic unloaded (~9 MiB of RSS per service).
    url = request.getfixturevalue(f"fresh_{server}_url")
    opened = [
        subprocess.run(
            [sys.executable, "-c", _REOPEN, url], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert opened == ["True", "False"]
