"""SQLite's compiled metric statements (sqlite_points.py) store what the plain path stores.

The same generated writes go to the SQLite store as embedded mode opens it and to the same
database through the plain SQLAlchemy path; history, each key's latest point and metric searches
must agree exactly, and so must the errors of writes the store refuses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import MlgridException, TemporarilyUnavailable
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.series import metric_series
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .conftest import ARTIFACT_ROOT
from .helpers import new_experiment
from .test_fast_path_equivalence import _apply, _observed, writes


@pytest.fixture(scope="module")
def sqlite_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SqlTrackingStore, SqlTrackingStore]]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('points') / 'mlgrid.db'}"
    compiled = SqlTrackingStore(uri, ARTIFACT_ROOT)
    plain = SqlTrackingStore(uri, ARTIFACT_ROOT, fast_paths=False)
    assert compiled._sqlite_points is not None and plain._sqlite_points is None
    yield compiled, plain
    compiled.close()
    plain.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(run_writes=writes)
def test_metric_writes_agree_with_the_plain_path_on_sqlite(
    sqlite_pair: tuple[SqlTrackingStore, SqlTrackingStore], run_writes: list
) -> None:
    observed = []
    for store in sqlite_pair:
        domain = TrackingDomain(store)
        experiment_id = new_experiment(domain)
        run_id = _apply(domain, experiment_id, run_writes)
        observed.append(_observed(domain, experiment_id, run_id))
    assert observed[0] == observed[1]


def _refusals(domain: TrackingDomain) -> list[str]:
    run_id = domain.create_run(new_experiment(domain), "u", 0, [], "").info.run_id
    point = tracking_pb2.Metric(key="m", value=1.0, timestamp=1, step=0)
    seen = []
    for target in ("0" * 32, run_id):
        if target == run_id:
            domain.delete_run(run_id)
        for write in (
            lambda target=target: domain.log_metric(target, point),
            lambda target=target: domain.log_batch(target, [point], [], []),
        ):
            try:
                write()
                seen.append("ok")
            except MlgridException as exc:
                seen.append(f"{exc.error_code}: {exc.message.replace(run_id, '<run>')}")
    return seen


def test_refused_writes_agree_with_the_plain_path_on_sqlite(
    sqlite_pair: tuple[SqlTrackingStore, SqlTrackingStore],
) -> None:
    compiled, plain = (_refusals(TrackingDomain(store)) for store in sqlite_pair)
    assert compiled == plain
    assert compiled[0].startswith("RESOURCE_DOES_NOT_EXIST") and "deleted" in compiled[-1]


def test_series_numbers_are_the_plain_paths(
    sqlite_pair: tuple[SqlTrackingStore, SqlTrackingStore],
) -> None:
    compiled = TrackingDomain(sqlite_pair[0])
    run_id = compiled.create_run(new_experiment(compiled), "u", 0, [], "").info.run_id
    compiled.log_metric(run_id, tracking_pb2.Metric(key="s", value=2.0, timestamp=1, step=3))
    with sqlite_pair[0].engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT series FROM metrics WHERE run_uuid = ? AND key = 's'", (run_id,)
        ).scalar()
    assert stored == metric_series(run_id, "s")


def test_a_driver_error_is_mapped_as_on_the_plain_path(tmp_path: Path) -> None:
    """A statement SQLite refuses (here: its table is gone) fails the same way both ways, and
    nothing of the call is kept."""
    path = tmp_path / "broken.db"
    outcomes = []
    for fast_paths in (True, False):
        store = SqlTrackingStore(f"sqlite:///{path}", ARTIFACT_ROOT, fast_paths=fast_paths)
        domain = TrackingDomain(store)
        run_id = domain.create_run(new_experiment(domain), "u", 0, [], "").info.run_id
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE latest_metrics RENAME TO latest_metrics_gone")
        try:
            with pytest.raises(MlgridException) as caught:
                domain.log_metric(run_id, tracking_pb2.Metric(key="m", value=1.0, timestamp=1))
            outcomes.append((type(caught.value), caught.value.error_code))
            with sqlite3.connect(path) as conn:
                kept = conn.execute("SELECT count(*) FROM metrics WHERE run_uuid = ?", (run_id,))
                assert kept.fetchone() == (0,)  # the transaction rolled back whole
        finally:
            with sqlite3.connect(path) as conn:
                conn.execute("ALTER TABLE latest_metrics_gone RENAME TO latest_metrics")
            store.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] is TemporarilyUnavailable
