"""Racing writers: threads on both backends, separate processes on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import MlgridException
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from . import race_workers
from .helpers import metrics_of, new_experiment, new_run, params_of, unique_name


def race(actions: list[Callable[[], object]]) -> list[str]:
    """Runs ``actions`` in threads released together; "ok" or the error code of each."""
    barrier = threading.Barrier(len(actions))
    results = [""] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        try:
            actions[index]()
            results[index] = "ok"
        except MlgridException as exc:
            results[index] = exc.error_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_racing_param_writers_leave_one_value_and_one_clean_error(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    for attempt in range(10):
        key = f"p{attempt}"
        results = race(
            [
                lambda key=key: domain.log_param(run_id, key, "a"),
                lambda key=key: domain.log_param(run_id, key, "b"),
            ]
        )
        assert sorted(results) == ["INVALID_PARAMETER_VALUE", "ok"]
        winner = "a" if results[0] == "ok" else "b"
        assert params_of(domain.get_run(run_id))[key] == winner


def test_racing_writers_of_the_same_param_value_both_succeed(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    for attempt in range(5):
        key = f"same{attempt}"
        results = race([lambda key=key: domain.log_param(run_id, key, "v")] * 2)
        assert results == ["ok", "ok"]
    assert len(params_of(domain.get_run(run_id))) == 5


def test_racing_metric_writers_lose_no_point(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    writers, per_writer = 6, 40

    def writer(worker: int) -> Callable[[], None]:
        def write() -> None:
            for i in range(per_writer):
                domain.log_metric(
                    run_id, tracking_pb2.Metric(key="m", value=i, timestamp=worker, step=i)
                )

        return write

    assert race([writer(w) for w in range(writers)]) == ["ok"] * writers
    history, _ = domain.get_metric_history(run_id, "m", 0, "")
    assert len(history) == writers * per_writer
    latest = metrics_of(domain.get_run(run_id))["m"]
    assert (latest.step, latest.timestamp) == (per_writer - 1, writers - 1)


def test_racing_experiment_creators_one_wins_the_rest_already_exists(
    domain: TrackingDomain,
) -> None:
    name = unique_name("race")
    results = race([lambda: domain.create_experiment(name, "", [])] * 6)
    assert sorted(results) == ["RESOURCE_ALREADY_EXISTS"] * 5 + ["ok"]


# ------------------------------------------------------ separate processes (PostgreSQL)


@pytest.fixture(scope="module")
def pool(postgres_url: str):
    # Migrate once here so the workers do not race on it.
    SqlTrackingStore(postgres_url, "file:///tmp/race").close()
    with multiprocessing.get_context("spawn").Pool(4) as workers:
        yield workers


def test_processes_racing_on_an_experiment_name(pool, postgres_url: str) -> None:
    name = unique_name("proc-race")
    results = pool.map(race_workers.create_experiment, [(postgres_url, name)] * 4)
    assert sorted(results) == ["RESOURCE_ALREADY_EXISTS"] * 3 + ["ok"]


def test_processes_racing_on_a_param(pool, postgres_store: SqlTrackingStore, postgres_url) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain).info.run_id
    results = pool.map(
        race_workers.log_param, [(postgres_url, run_id, "lr", v) for v in ("1", "2", "1", "2")]
    )
    stored = params_of(domain.get_run(run_id))["lr"]
    expected_ok = sorted(["ok", "ok"] + ["INVALID_PARAMETER_VALUE"] * 2)
    assert sorted(results) == expected_ok
    assert [r for r, v in zip(results, "1212", strict=True) if r == "ok"] == ["ok", "ok"]
    assert all(r == "ok" for r, v in zip(results, "1212", strict=True) if v == stored)


def test_processes_logging_metrics_lose_no_point(
    pool, postgres_store: SqlTrackingStore, postgres_url: str
) -> None:
    domain = TrackingDomain(postgres_store)
    run_id = new_run(domain, new_experiment(domain)).info.run_id
    written = pool.map(race_workers.log_metrics, [(postgres_url, run_id, w, 50) for w in range(4)])
    history, _ = domain.get_metric_history(run_id, "race", 0, "")
    assert len(history) == sum(written) == 400
    latest = metrics_of(domain.get_run(run_id))["race"]
    assert (latest.step, latest.timestamp) == (10_049, 3)


def test_processes_starting_together_on_a_new_sqlite_file_all_migrate(pool, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'together.db'}"
    assert pool.map(race_workers.open_store, [url] * 4) == ["ok"] * 4
    store = SqlTrackingStore(url, "file:///tmp/race")
    assert store.get_experiment("0").name == "Default"
    store.close()
