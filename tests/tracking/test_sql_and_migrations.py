"""services/common/sql.py and the tracking migrations on fresh databases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.common.sql import make_engine, normalize_db_uri
from mlgrid_services.tracking import migrations
from mlgrid_services.tracking.store import STORE_CLASSES, open_store, store_class
from mlgrid_services.tracking.store.series import metric_series
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

TABLES = {
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "metrics",
    "latest_metrics",
    "datasets",
    "run_inputs",
    "run_input_tags",
    "alembic_version_tracking",
    "logged_models",
    "logged_model_params",
    "logged_model_tags",
    "logged_model_metrics",
    "run_model_outputs",
    "run_model_inputs",
}
#: The newest tracking revision.
HEAD = "0006_metrics_insert_vacuum"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h:5/db", "postgresql+psycopg://u@h:5/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_uris_are_normalised_to_psycopg(given: str, expected: str) -> None:
    assert normalize_db_uri(given) == expected


def test_sqlite_engine_refuses_a_missing_directory_and_creates_nothing(tmp_path: Path) -> None:
    # A typo in the path (sqlite:////typo/dir/x.db) must not quietly make directories.
    path = tmp_path / "a" / "b" / "store.db"
    with pytest.raises(InvalidParameterValue, match=r"directory .* does not exist"):
        make_engine(f"sqlite:///{path}")
    assert not (tmp_path / "a").exists()


def test_sqlite_engine_creates_the_file_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "store.db"
    path.parent.mkdir()
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        }
    assert path.is_file()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: durable by default
        "busy_timeout": 30000,
        "foreign_keys": 1,
    }
    engine.dispose()


def test_migrations_create_schema_and_default_experiment_on_sqlite(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    migrations.upgrade(uri)
    migrations.upgrade(uri)  # idempotent
    engine = make_engine(uri)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    assert migrations.revision_of(engine) == HEAD
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM experiments")).scalars().all() == ["Default"]
    engine.dispose()


def test_migrations_on_a_fresh_postgres_share_the_database(fresh_postgres_url: str) -> None:
    engine = make_engine(fresh_postgres_url)
    with engine.begin() as conn:  # another service's version table must be left alone
        conn.exec_driver_sql("CREATE TABLE alembic_version_registry (version_num varchar(32))")
        conn.exec_driver_sql("INSERT INTO alembic_version_registry VALUES ('other')")
    migrations.upgrade(fresh_postgres_url.replace("postgresql+psycopg://", "postgres://"))
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    assert migrations.revision_of(engine) == HEAD
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT * FROM alembic_version_registry").scalar() == "other"
    engine.dispose()


def test_migrations_on_a_fresh_mysql_compare_names_exactly(fresh_mysql_url: str) -> None:
    """MySQL's default collations ignore case and trailing spaces; mlgrid's tables do not."""
    migrations.upgrade(fresh_mysql_url)
    store = SqlTrackingStore(fresh_mysql_url, "file:///tmp/mlgrid-tracking-tests")
    try:
        assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
        assert migrations.revision_of(store.engine) == _head()
        assert store.get_experiment("0").name == "Default"  # id 0, not the next number
        ids = {name: store.create_experiment(name, None, []) for name in ("Case", "case", "case ")}
        assert len(set(ids.values())) == 3
        assert store.get_experiment_by_name("case ").experiment_id == ids["case "]  # type: ignore[union-attr]
    finally:
        store.close()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    return str(ScriptDirectory.from_config(config).get_current_head())


def test_store_opens_and_migrates_on_start(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'fresh.db'}", "s3://bucket/root/")
    assert isinstance(store, SqlTrackingStore)
    assert store.get_experiment("0").artifact_location == "s3://bucket/root/0"
    store.close()


def test_scheme_table_and_unknown_scheme() -> None:
    assert {"sqlite", "postgresql", "postgresql+psycopg"} <= set(STORE_CLASSES)
    assert store_class("postgresql://x/y") is SqlTrackingStore
    assert store_class("mysql://x/y") is store_class("mariadb://x/y") is SqlTrackingStore
    with pytest.raises(InvalidParameterValue, match=r"unknown scheme 'oracle'.*sqlite"):
        store_class("oracle://x/y")


def test_an_unreachable_database_is_temporarily_unavailable() -> None:
    from mlgrid.exceptions import TemporarilyUnavailable

    with pytest.raises(TemporarilyUnavailable, match="tracking database is unavailable"):
        SqlTrackingStore(
            "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", "file:///x", migrate=False
        )


def _migrate_metrics_written_before_series(uri: str) -> None:
    """Points written at 0001 (no series column) read back whole after the upgrade to head."""
    migrations.upgrade(uri, "0001_initial")
    engine = make_engine(uri)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs VALUES ('r1', 'n', 0, 'u', 'RUNNING', 0, NULL, 'x', 'active', "
                ":false)"
            ),
            {"false": False},
        )
        conn.execute(
            sa.text(
                'INSERT INTO metrics (run_uuid, key, step, "timestamp", value, is_nan) '
                "VALUES ('r1', :key, :step, 5, :value, :nan)"
            ),
            [
                {"key": "loss", "step": 2, "value": 0.5, "nan": False},
                {"key": "loss", "step": 1, "value": 0.0, "nan": True},
                {"key": "acc", "step": 1, "value": 0.9, "nan": False},
            ],
        )
    engine.dispose()
    store = open_store(uri, "file:///tmp/mlgrid-tracking-tests")
    assert migrations.revision_of(store.engine) == HEAD
    loss, _ = store.get_metric_history("r1", "loss", 0, "")
    assert [(m.step, m.value) for m in loss][1] == (2, 0.5) and math.isnan(loss[0].value)
    acc, _ = store.get_metric_history("r1", "acc", 0, "")
    assert [(m.step, m.value) for m in acc] == [(1, 0.9)]
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT DISTINCT key, series FROM metrics")).all())
    assert stored == {"loss": metric_series("r1", "loss"), "acc": metric_series("r1", "acc")}
    store.close()


def test_migration_gives_existing_points_their_series_on_sqlite(tmp_path: Path) -> None:
    _migrate_metrics_written_before_series(f"sqlite:///{tmp_path / 'old.db'}")


def test_migration_gives_existing_points_their_series_on_postgres(
    fresh_postgres_url: str,
) -> None:
    _migrate_metrics_written_before_series(fresh_postgres_url)


def test_migrations_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    uri = f"sqlite:///{tmp_path / 'down.db'}"
    migrations.upgrade(uri)
    engine = make_engine(uri)
    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        config.attributes["version_table"] = migrations.VERSION_TABLE
        command.downgrade(config, "0001_initial")
    assert "series" not in {c["name"] for c in sa.inspect(engine).get_columns("metrics")}
    engine.dispose()
    migrations.upgrade(uri)
    engine = make_engine(uri)
    assert "series" in {c["name"] for c in sa.inspect(engine).get_columns("metrics")}
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_logged_model_tables_come_and_go_with_their_migration(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database at 0003 gains the logged-model tables; downgrading removes only them."""
    uri = (
        f"sqlite:///{tmp_path / 'lm.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    logged = {t for t in TABLES if "model" in t}
    migrations.upgrade(uri, "0003_metric_points_once")
    engine = make_engine(uri)
    assert not logged & set(sa.inspect(engine).get_table_names())
    migrations.upgrade(uri)
    assert logged <= set(sa.inspect(engine).get_table_names())
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        config.attributes["version_table"] = migrations.VERSION_TABLE
        command.downgrade(config, "0003_metric_points_once")
    remaining = set(sa.inspect(engine).get_table_names())
    assert not logged & remaining and "metrics" in remaining
    engine.dispose()
