"""Durable by default: what the stores' connections commit with, and acknowledged writes surviving
a kill -9 of the service (concurrent writers committed together: test_group_commit.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mlgrid.api.tracking.v1 import tracking_service_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.transport import Transport
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore
from mlgrid_services.stack import READY, parse_line
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

ROOT = "file:///tmp/mlgrid-durability"


def _pg_settings(cursor: psycopg.Cursor, name: str) -> str:
    row = cursor.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def _tracking_settings(store: SqlTrackingStore, name: str) -> tuple[str, str]:
    """The setting on the store's fast-path connections and on its engine's connections."""
    assert store._fast is not None
    with store._fast.cursors.cursor() as cursor:
        fast = _pg_settings(cursor, name)
    with store.engine.connect() as conn:
        engine = str(conn.exec_driver_sql(f"SHOW {name}").scalar())
    return fast, engine


def test_postgres_stores_commit_durably_by_default(postgres_url: str) -> None:
    tracking = SqlTrackingStore(postgres_url, ROOT)
    registry = SqlRegistryStore(postgres_url)
    try:
        assert _tracking_settings(tracking, "synchronous_commit") == ("on", "on")
        assert registry.pg is not None
        with registry.pg.cursor() as cursor:
            assert _pg_settings(cursor, "synchronous_commit") == "on"
        with registry.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        tracking.close()
        registry.close()


def test_async_commit_is_an_explicit_option_and_the_uri_still_wins(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_STORE_ASYNC_COMMIT", "true")
    sep = "&" if "?" in postgres_url else "?"
    store = SqlTrackingStore(f"{postgres_url}{sep}options=-c%20work_mem%3D5MB", ROOT)
    try:
        assert _tracking_settings(store, "synchronous_commit") == ("off", "off")
        assert _tracking_settings(store, "work_mem") == ("5MB", "5MB")  # the URI's options kept
    finally:
        store.close()
    chosen = SqlTrackingStore(f"{postgres_url}{sep}options=-c%20synchronous_commit%3Don", ROOT)
    try:
        assert _tracking_settings(chosen, "synchronous_commit") == ("on", "on")
    finally:
        chosen.close()


def test_async_commit_refuses_a_value_that_is_not_a_boolean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_STORE_ASYNC_COMMIT", "sometimes")
    with pytest.raises(InvalidParameterValue, match="MLGRID_STORE_ASYNC_COMMIT='sometimes'"):
        SqlTrackingStore(f"sqlite:///{tmp_path / 'x.db'}", ROOT)


@pytest.mark.parametrize(("async_commit", "level"), [("false", 2), ("true", 1)])
def test_sqlite_syncs_its_log_at_every_commit_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, async_commit: str, level: int
) -> None:
    monkeypatch.setenv("MLGRID_STORE_ASYNC_COMMIT", async_commit)
    store = SqlTrackingStore(f"sqlite:///{tmp_path / 'x.db'}", ROOT)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level  # 2 FULL, 1 NORMAL
    finally:
        store.close()


# ----------------------------------------------------------------------- kill -9 of the service


def _serve_tracking(store_uri: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlgrid.cli.main",
            "server",
            "tracking",
            "--port",
            "0",
            "--backend-store-uri",
            store_uri,
            "--default-artifact-root",
            (tmp_path / "artifacts").as_uri(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    parsed = parse_line(line)
    if parsed is None or parsed[0] != READY:
        proc.kill()
        pytest.fail(f"the tracking service did not start: {line!r} (exit {proc.wait()})")
    return proc, int(parsed[1]["address"].rsplit(":", 1)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def durable_store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'killed.db'}"
    else:
        yield request.getfixturevalue("fresh_postgres_url")


def test_acknowledged_writes_survive_a_kill_of_the_service(
    durable_store_uri: str, tmp_path: Path
) -> None:
    proc, port = _serve_tracking(durable_store_uri, tmp_path)
    acknowledged: list[int] = []
    try:
        transport = Transport(f"grpc://127.0.0.1:{port}")
        stub = transport.tracking
        run = stub.CreateRun(tracking_service_pb2.CreateRunRequest(experiment_id="0")).run
        run_id = run.info.run_id
        lock = threading.Lock()

        def writer(first: int) -> None:
            for step in range(first, first + 25):
                stub.LogMetric(
                    tracking_service_pb2.LogMetricRequest(
                        run_id=run_id, key="m", value=float(step), timestamp=step, step=step
                    )
                )
                with lock:
                    acknowledged.append(step)

        threads = [threading.Thread(target=writer, args=(i * 25,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stub.SetTag(tracking_service_pb2.SetTagRequest(run_id=run_id, key="t", value="kept"))
        transport.close()
    finally:
        proc.kill()  # SIGKILL: no shutdown, nothing flushed by the service
        proc.wait()
    assert len(acknowledged) == 100
    store = SqlTrackingStore(durable_store_uri, (tmp_path / "artifacts").as_uri())
    try:
        domain = TrackingDomain(store)
        points, _ = domain.get_metric_history(run_id, "m", 0, "")
        assert sorted(p.step for p in points) == sorted(acknowledged)
        got = domain.get_run(run_id)
        assert {t.key: t.value for t in got.data.tags}["t"] == "kept"
        assert [(m.key, m.step) for m in got.data.metrics] == [("m", 99)]
    finally:
        store.close()


# ------------------------------------------------------------------------------- group commit
