"""Worker functions the concurrency tests run in separate processes (importable for spawn)."""

from __future__ import annotations

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import MlgridException
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore


def _domain(url: str) -> TrackingDomain:
    return TrackingDomain(SqlTrackingStore(url, "file:///tmp/race", migrate=False))


def create_experiment(args: tuple[str, str]) -> str:
    """Creates the named experiment; returns "ok" or the error code."""
    url, name = args
    domain = _domain(url)
    try:
        domain.create_experiment(name, "", [])
        return "ok"
    except MlgridException as exc:
        return exc.error_code
    finally:
        domain.store.close()


def log_param(args: tuple[str, str, str, str]) -> str:
    url, run_id, key, value = args
    domain = _domain(url)
    try:
        domain.log_param(run_id, key, value)
        return "ok"
    except MlgridException as exc:
        return exc.error_code
    finally:
        domain.store.close()


def log_metrics(args: tuple[str, str, int, int]) -> int:
    """Logs ``count`` single points and one batch of ``count`` points; returns points logged."""
    url, run_id, worker, count = args
    domain = _domain(url)
    try:
        for i in range(count):
            domain.log_metric(
                run_id, tracking_pb2.Metric(key="race", value=float(i), timestamp=worker, step=i)
            )
        batch = [
            tracking_pb2.Metric(key="race", value=float(worker), timestamp=worker, step=10_000 + i)
            for i in range(count)
        ]
        domain.log_batch(run_id, batch, [], [])
        return 2 * count
    finally:
        domain.store.close()


def open_store(url: str) -> str:
    """Opens (and so migrates) the store at ``url``; "ok" or the error."""
    try:
        SqlTrackingStore(url, "file:///tmp/race").close()
        return "ok"
    except Exception as exc:  # the test wants to see any failure, whatever its type
        return f"{type(exc).__name__}: {exc}"
