"""Group commit (services/common/group_commit.py): concurrent writers committed together, each
with its own outcome; log_metric calls that queue together merged into one statement; a held
write holding up no one for long."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
import pytest

from mlgrid.exceptions import InvalidParameterValue, MlgridException
from mlgrid_services.common.group_commit import MERGING_IN_FLIGHT, GroupCommit, Mergeable, Merged
from mlgrid_services.common.pg_cursors import PgCursors
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store import pg_fast
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .helpers import metric, new_run, params_of


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


def _queued_behind_a_lock(
    commits: GroupCommit, cursors: PgCursors, write: Callable[[int], object], count: int
) -> dict[int, object]:
    """Writes 1..``count`` (``write(n)`` on a thread each) queued behind a first statement of
    ``commits`` that waits on an advisory lock; each one's row, or what it raised (and the first
    statement's row under 0)."""
    holder = cursors.connect()
    holder.execute("SELECT pg_advisory_lock(4242)")
    outcomes: dict[int, object] = {}

    def run(n: int) -> None:
        try:
            if n == 0:  # waits for the holder
                outcomes[n] = commits.execute("SELECT pg_advisory_xact_lock(4242)", {})
            else:
                outcomes[n] = write(n)
        except Exception as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(0,))]
    threads[0].start()
    deadline = time.monotonic() + 10
    while commits.transactions < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    threads += [threading.Thread(target=run, args=(n,)) for n in range(1, count + 1)]
    for thread in threads[1:]:
        thread.start()
    while commits.waiting < count:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    holder.execute("SELECT pg_advisory_unlock(4242)")
    holder.close()
    for thread in threads:
        thread.join()
    return outcomes


def _queue_behind_a_held_write(
    commits: GroupCommit, url: str, held: Callable[[], None], queued: list[Callable[[], None]]
) -> None:
    """Runs ``held`` (a log_metric on a run whose latest row ``url``'s blocker holds, see the
    caller) and, once it waits on that lock, ``queued`` on threads that queue behind it; joins
    them all after the blocker lets go."""
    threads = [threading.Thread(target=held)]
    threads[0].start()
    deadline = time.monotonic() + 10
    while _waiting_writers(url) < 1:
        assert time.monotonic() < deadline, "the first writer never reached the database"
        time.sleep(0.01)
    threads += [threading.Thread(target=call) for call in queued]
    for thread in threads[1:]:
        thread.start()
    while commits.waiting < len(queued):
        assert time.monotonic() < deadline, "the writers never queued"
        time.sleep(0.01)


def _outcome(call: Callable[[], None]) -> str:
    try:
        call()
    except MlgridException as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_log_metric_calls_that_queue_together_run_as_one_statement_each_with_its_outcome(
    postgres_store: SqlTrackingStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged: list[int] = []
    merge = pg_fast.PG_ONE_POINT.merge

    def counted(calls: Sequence[Mapping[str, Any]]) -> Merged:
        merged.append(len(calls))
        return merge(calls)

    monkeypatch.setattr(pg_fast.PG_ONE_POINT, "merge", counted)
    domain = TrackingDomain(postgres_store)
    held_run, other_run, deleted_run = (new_run(domain).info.run_id for _ in range(3))
    missing_run = uuid.uuid4().hex
    domain.log_metric(held_run, metric("m", 0.0, 1, 0))
    domain.delete_run(deleted_run)
    assert postgres_store._fast is not None
    own = postgres_store._fast.commits
    commits = postgres_store._fast.commits = GroupCommit(
        postgres_store._fast.cursors, max_in_flight=1
    )
    # Points of several runs and keys; on other_run an exact duplicate (a retried call) and
    # steps out of order, so that the latest point is not the last one sent.
    queued = [
        (held_run, metric("m", 1.0, 1, 1)),
        (other_run, metric("m", 5.0, 7, 3)),
        (other_run, metric("m", 2.0, 9, 1)),
        (other_run, metric("m", 5.0, 7, 3)),
        (other_run, metric("n", float("nan"), 3, 0)),
        (deleted_run, metric("m", 1.0, 1, 0)),
        (missing_run, metric("m", 1.0, 1, 0)),
        (held_run, metric("m", 2.0, 1, 2)),
    ]
    outcomes: dict[int, str] = {}

    def call(index: int) -> Callable[[], None]:
        def run() -> None:
            outcomes[index] = _outcome(lambda: domain.log_metric(*queued[index]))

        return run

    blocker = _hold_latest_row(postgres_url, held_run)
    try:
        before = commits.transactions
        _queue_behind_a_held_write(
            commits,
            postgres_url,
            lambda: domain.log_metric(held_run, metric("m", 0.5, 2, 0)),
            [call(i) for i in range(len(queued))],
        )
    finally:
        blocker.rollback()
        blocker.close()
    deadline = time.monotonic() + 10
    while len(outcomes) < len(queued):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    postgres_store._fast.commits = own
    # The held write alone, then the eight that queued as ONE statement (no failure to retry).
    assert merged == [len(queued)]
    assert commits.transactions - before == 2
    # Each caller got what the same call gets on its own.
    expected = {i: _outcome(lambda i=i: domain.log_metric(*queued[i])) for i in range(len(queued))}
    assert outcomes == expected
    assert outcomes[5].startswith("InvalidParameterValue") and "deleted" in outcomes[5].lower()
    assert outcomes[6].startswith("ResourceDoesNotExist")
    history = [
        (p.step, p.timestamp, p.value) for p in domain.get_metric_history(other_run, "m", 0, "")[0]
    ]
    assert history == [(1, 9, 2.0), (3, 7, 5.0)]  # the duplicate stored once
    latest = {m.key: (m.step, m.value) for m in domain.get_run(other_run).data.metrics}
    assert latest["m"] == (3, 5.0)
    assert latest["n"][0] == 0 and latest["n"][1] != latest["n"][1]  # NaN kept as NaN
    assert [p.step for p in domain.get_metric_history(held_run, "m", 0, "")[0]] == [0, 0, 1, 2]
    assert {m.key: m.step for m in domain.get_run(held_run).data.metrics} == {"m": 2}
    assert domain.get_metric_history(deleted_run, "m", 0, "")[0] == []


@pytest.mark.parametrize("merged", [False, True], ids=["pipelined", "merged"])
def test_a_failing_statement_in_a_batch_fails_only_its_own_caller(
    postgres_store: SqlTrackingStore, merged: bool
) -> None:
    """Ten writes queue into one batch, one of them refused by the table (n = 7): the shared
    transaction (pipelined statements, or one merged statement) rolls back whole, each write
    then runs alone, and only the refused one fails."""
    assert postgres_store._fast is not None
    cursors = postgres_store._fast.cursors
    table = f"group_commit_{uuid.uuid4().hex[:8]}"
    with cursors.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (n int PRIMARY KEY CHECK (n <> 7))")
    merges: list[int] = []

    def merge(calls: Sequence[Mapping[str, Any]]) -> Merged:
        merges.append(len(calls))
        numbers = [call["n"] for call in calls]
        return Merged(
            f"INSERT INTO {table} SELECT unnest(CAST(%(ns)s AS int[])) RETURNING n",
            {"ns": numbers},
            lambda rows: [(n,) if (n,) in rows else None for n in numbers],
        )

    sql = f"INSERT INTO {table} VALUES (CAST(%(n)s AS int)) RETURNING n"
    insert = Mergeable(f"test_{table}", sql, merge) if merged else sql
    commits = GroupCommit(cursors, max_in_flight=1)
    outcomes = _queued_behind_a_lock(
        commits, cursors, lambda n: commits.execute(insert, {"n": n}), 10
    )
    assert merges == ([10] if merged else [])
    assert isinstance(outcomes.pop(7), psycopg.errors.CheckViolation)
    # Alone, a Mergeable runs through libpq (pg_raw): its answer comes as text.
    assert outcomes == {0: ("",), **{n: (str(n) if merged else n,) for n in range(1, 11) if n != 7}}
    with cursors.cursor() as cursor:
        stored = [row[0] for row in cursor.execute(f"SELECT n FROM {table} ORDER BY n")]
        cursor.execute(f"DROP TABLE {table}")
    assert stored == [n for n in range(1, 11) if n != 7]
    # The lone first statement, the batch (rolled back by the failure), then each alone.
    assert commits.transactions == 1 + 1 + 10


@pytest.mark.parametrize("merging_in_flight", [MERGING_IN_FLIGHT, 1])
def test_a_held_write_holds_up_writers_of_other_runs_at_most_for_the_patience(
    postgres_store: SqlTrackingStore, postgres_url: str, merging_in_flight: int
) -> None:
    """While one write waits on a row lock, writes of another run still commit: beside it
    (below MERGING_IN_FLIGHT commits under way), or, queued behind it to be merged, on their own
    once the patience is over."""
    patience = 0.05
    domain = TrackingDomain(postgres_store)
    held_run, free_run = (new_run(domain).info.run_id for _ in range(2))
    domain.log_metric(held_run, metric("m", 0.0, 1, 0))
    assert postgres_store._fast is not None
    own = postgres_store._fast.commits
    postgres_store._fast.commits = GroupCommit(
        postgres_store._fast.cursors, merging_in_flight=merging_in_flight, patience=patience
    )
    blocker = _hold_latest_row(postgres_url, held_run)
    held = threading.Thread(target=domain.log_metric, args=(held_run, metric("m", 1.0, 1, 1)))
    held.start()
    try:
        deadline = time.monotonic() + 10
        while _waiting_writers(postgres_url) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        start = time.monotonic()
        for step in range(5):  # each returns while the other write is still held
            domain.log_metric(free_run, metric("m", float(step), 1, step))
        waited = time.monotonic() - start
        assert held.is_alive()
    finally:
        blocker.rollback()
        blocker.close()
        held.join()
        postgres_store._fast.commits = own
    if merging_in_flight == 1:  # each of the five queued behind the held one first
        assert 5 * patience <= waited < 10
    assert [p.step for p in domain.get_metric_history(free_run, "m", 0, "")[0]] == list(range(5))
    assert [p.step for p in domain.get_metric_history(held_run, "m", 0, "")[0]] == [0, 1]


def test_writes_leave_no_garbage_for_the_cyclic_collector(
    postgres_store: SqlTrackingStore,
) -> None:
    # Each write that led its own commit used to keep its batch, a list holding that write: a
    # reference cycle per log_metric, which only Python's cyclic collector frees. Collections
    # then ran every few hundred calls in the tracking service (and a full one every ~10,000,
    # 33 ms on a 2-core machine). Every object a write makes must go with its last reference.
    # (What the collector finds is kept for inspection, and only group commit's objects are
    # counted: other threads of the test process may leave garbage of their own meanwhile.)
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    domain.log_metric(run_id, metric("warm", 0.0, 1, 0))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for step in range(200):
            domain.log_metric(run_id, metric("m", float(step), 1_000 + step, step))
        domain.log_batch(run_id, [metric("b", 1.0, 5, step) for step in range(10)], [], [])
        domain.log_param(run_id, "p", "v")
        gc.collect()
        left = [o for o in gc.garbage if type(o).__module__ == GroupCommit.__module__]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
    history, _ = domain.get_metric_history(run_id, "m", 0, "")
    assert [point.step for point in history] == list(range(200))
