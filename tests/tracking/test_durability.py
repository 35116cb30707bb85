"""Durable by default: what the stores' connections commit with, acknowledged writes surviving a
kill -9 of the service, and concurrent writers committed together (group commit)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mlgrid.api.tracking.v1 import tracking_service_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.transport import Transport
from mlgrid_services.common.group_commit import GroupCommit
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore
from mlgrid_services.stack import READY, parse_line
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .helpers import metric, new_run, params_of

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


def _hold_latest_row(url: str, run_id: str) -> psycopg.Connection:
    """A transaction holding the row lock of run ``run_id``'s latest "m" point."""
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    conn.execute("SELECT 1 FROM latest_metrics WHERE run_uuid = %s FOR UPDATE", (run_id,))
    return conn


def _waiting_writers(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mlgrid-tracking'"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_writers_that_overlap_share_one_commit_and_each_sees_its_own_outcome(
    postgres_store: SqlTrackingStore, postgres_url: str
) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    domain.log_metric(run_id, metric("m", 0.0, 1, 0))
    domain.log_param(run_id, "p", "first")
    assert postgres_store._fast is not None
    # One commit at a time, so that every writer arriving while the first is held queues.
    own = postgres_store._fast.commits
    commits = postgres_store._fast.commits = GroupCommit(
        postgres_store._fast.cursors, max_in_flight=1
    )
    before = commits.transactions
    blocker = _hold_latest_row(postgres_url, run_id)
    errors: dict[int, Exception] = {}

    def write(index: int) -> None:
        try:
            if index == 5:  # one refused write among them: a changed param
                domain.log_param(run_id, "p", "changed")
            else:
                domain.log_metric(run_id, metric("m", float(index), 1, index))
        except Exception as exc:
            errors[index] = exc

    # The first writer waits on the held row lock; the others queue behind its commit.
    threads = [threading.Thread(target=write, args=(1,))]
    threads[0].start()
    deadline = time.monotonic() + 10
    while _waiting_writers(postgres_url) < 1:
        assert time.monotonic() < deadline, "the first writer never reached the database"
        time.sleep(0.01)
    threads += [threading.Thread(target=write, args=(i,)) for i in range(2, 22)]
    for thread in threads[1:]:
        thread.start()
    while commits.waiting < 20:
        assert time.monotonic() < deadline, "the writers never queued"
        time.sleep(0.01)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join()
    assert list(errors) == [5] and isinstance(errors[5], InvalidParameterValue)
    points, _ = domain.get_metric_history(run_id, "m", 0, "")
    assert [p.step for p in points] == [i for i in range(22) if i != 5]
    assert params_of(domain.get_run(run_id)) == {"p": "first"}
    assert {m.key: m.step for m in domain.get_run(run_id).data.metrics} == {"m": 21}
    # The first writer committed alone, the twenty that queued meanwhile in one transaction.
    assert commits.transactions - before == 2
    postgres_store._fast.commits = own


def test_a_failing_statement_fails_only_its_own_caller(postgres_store: SqlTrackingStore) -> None:
    assert postgres_store._fast is not None
    cursors = postgres_store._fast.cursors
    table = f"group_commit_{uuid.uuid4().hex[:8]}"
    with cursors.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (n int PRIMARY KEY)")
    commits = GroupCommit(cursors, max_in_flight=1)
    holder = cursors.connect()
    holder.execute("SELECT pg_advisory_lock(4242)")
    outcomes: dict[int, object] = {}

    def write(n: int) -> None:
        sql = f"INSERT INTO {table} VALUES (%(n)s) RETURNING n"
        if n == 0:
            sql = "SELECT pg_advisory_xact_lock(4242)"  # waits for the holder
        elif n == 7:
            sql = "SELECT 1 / (%(n)s - 7)"  # division by zero
        try:
            outcomes[n] = commits.execute(sql, {"n": n})
        except Exception as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=write, args=(0,))]
    threads[0].start()
    deadline = time.monotonic() + 10
    while commits.transactions < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    threads += [threading.Thread(target=write, args=(n,)) for n in range(1, 11)]
    for thread in threads[1:]:
        thread.start()
    while commits.waiting < 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    holder.execute("SELECT pg_advisory_unlock(4242)")
    holder.close()
    for thread in threads:
        thread.join()
    assert isinstance(outcomes.pop(7), psycopg.errors.DivisionByZero)
    assert outcomes == {0: ("",), **{n: (n,) for n in range(1, 11) if n != 7}}
    with cursors.cursor() as cursor:
        stored = [row[0] for row in cursor.execute(f"SELECT n FROM {table} ORDER BY n")]
        cursor.execute(f"DROP TABLE {table}")
    assert stored == [n for n in range(1, 11) if n != 7]
    # The lone first statement, the batch of ten (rolled back by the failure), each alone.
    assert commits.transactions == 1 + 1 + 10


def test_a_held_write_does_not_hold_up_writers_of_other_runs(
    postgres_store: SqlTrackingStore, postgres_url: str
) -> None:
    """Commits run side by side (up to MAX_IN_FLIGHT): a write waiting on a lock is no queue
    for everyone else."""
    domain = TrackingDomain(postgres_store)
    held_run = new_run(domain).info.run_id
    free_run = new_run(domain).info.run_id
    domain.log_metric(held_run, metric("m", 0.0, 1, 0))
    blocker = _hold_latest_row(postgres_url, held_run)
    held = threading.Thread(target=domain.log_metric, args=(held_run, metric("m", 1.0, 1, 1)))
    held.start()
    try:
        deadline = time.monotonic() + 10
        while _waiting_writers(postgres_url) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for step in range(5):  # each returns while the other write is still held
            domain.log_metric(free_run, metric("m", float(step), 1, step))
        assert held.is_alive()
    finally:
        blocker.rollback()
        blocker.close()
        held.join()
    assert len(domain.get_metric_history(free_run, "m", 0, "")[0]) == 5
    assert [p.step for p in domain.get_metric_history(held_run, "m", 0, "")[0]] == [0, 1]
