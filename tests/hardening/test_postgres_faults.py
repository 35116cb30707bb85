"""PostgreSQL restarts and crashes under load, on a private server (private_postgres.py).

What a user must see: a call made after the database is back succeeds at once (no stale pooled
connection fails it); calls made while it is down fail with UNAVAILABLE, never INTERNAL; every
write that was acknowledged is there afterwards, and an atomic batch is either all there or not
at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc

from .private_postgres import PrivatePostgres, available

pytestmark = pytest.mark.postgres

#: Parameters per batch: a batch is atomic, so after any fault it has all of them or none.
BATCH = 10


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    why = available()
    if why is not None:
        pytest.fail(f"a private PostgreSQL cannot be started here: {why}")
    server = PrivatePostgres().init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def tracking(private_pg: PrivatePostgres, tmp_path: Path, start_stack_for):
    """Tracking behind the gateway on the private server, committing durably."""
    return start_stack_for(tmp_path, private_pg.url + "?options=-c%20synchronous_commit%3Don")


@pytest.fixture
def start_stack_for():
    from fixtures.stack import start_stack

    stacks = []

    def start(tmp_path: Path, uri: str) -> pb_grpc.TrackingServiceStub:
        stack = start_stack(tmp_path, backend_store_uri=uri, services=["tracking"])
        stacks.append(stack)
        return pb_grpc.TrackingServiceStub(stack.channel())

    yield start
    for stack in stacks:
        stack.stop()


def _new_run(stub: pb_grpc.TrackingServiceStub) -> str:
    experiment = stub.CreateExperiment(pb.CreateExperimentRequest(name=f"faults-{time.time_ns()}"))
    return stub.CreateRun(
        pb.CreateRunRequest(experiment_id=experiment.experiment_id)
    ).run.info.run_id


class Writers:
    """Threads logging atomic batches of params until stopped; each remembers what was
    acknowledged and which status codes the failures had."""

    def __init__(self, stub: pb_grpc.TrackingServiceStub, run_id: str, threads: int = 4) -> None:
        self.stub = stub
        self.run_id = run_id
        self.acknowledged: list[str] = []
        self.failures: list[grpc.StatusCode] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(threads)
        ]

    def _write(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            prefix = f"w{n}-{i}"
            params = [tracking_pb2.Param(key=f"{prefix}.{k}", value=str(k)) for k in range(BATCH)]
            try:
                self.stub.LogBatch(
                    pb.LogBatchRequest(run_id=self.run_id, params=params), timeout=10
                )
            except grpc.RpcError as exc:
                with self._lock:
                    self.failures.append(exc.code())
                time.sleep(0.05)
            else:
                with self._lock:
                    self.acknowledged.append(prefix)
            i += 1

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(15)


def _params_by_batch(stub: pb_grpc.TrackingServiceStub, run_id: str) -> dict[str, int]:
    params = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run.data.params
    counts: dict[str, int] = {}
    for param in params:
        prefix = param.key.rsplit(".", 1)[0]
        counts[prefix] = counts.get(prefix, 0) + 1
    return counts


def _check_after_fault(writers: Writers, stub: pb_grpc.TrackingServiceStub, run_id: str) -> None:
    counts = _params_by_batch(stub, run_id)
    lost = [p for p in writers.acknowledged if counts.get(p) != BATCH]
    assert not lost, f"{len(lost)} acknowledged batches are missing or partial: {lost[:5]}"
    partial = {p: n for p, n in counts.items() if n != BATCH}
    assert not partial, f"half-written batches are visible: {partial}"
    unexpected = {c for c in writers.failures} - {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
    assert not unexpected, f"failures other than UNAVAILABLE: {unexpected}"


def test_first_calls_after_a_restart_succeed(private_pg: PrivatePostgres, tracking) -> None:
    run_id = _new_run(tracking)
    # Fill the pools with connections (several calls at once), then restart the server.
    threads = [
        threading.Thread(
            target=lambda i=i: tracking.LogParam(
                pb.LogParamRequest(run_id=run_id, key=f"warm{i}", value="1")
            )
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    private_pg.restart()
    started = time.monotonic()
    tracking.LogParam(pb.LogParamRequest(run_id=run_id, key="after", value="1"), timeout=10)
    run = tracking.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run
    found = tracking.SearchRuns(
        pb.SearchRunsRequest(experiment_ids=[run.info.experiment_id]), timeout=10
    )
    assert time.monotonic() - started < 5.0
    assert {p.key for p in run.data.params} >= {"after", *(f"warm{i}" for i in range(8))}
    assert [r.info.run_id for r in found.runs] == [run_id]


def test_restart_under_load_loses_no_acknowledged_write(
    private_pg: PrivatePostgres, tracking
) -> None:
    run_id = _new_run(tracking)
    with Writers(tracking, run_id) as writers:
        time.sleep(1.0)
        private_pg.restart()
        restarted = len(writers.acknowledged)
        time.sleep(1.5)
    assert len(writers.acknowledged) > restarted, "no write succeeded after the restart"
    _check_after_fault(writers, tracking, run_id)


def test_server_crash_under_load_loses_no_acknowledged_write(
    private_pg: PrivatePostgres, tracking
) -> None:
    run_id = _new_run(tracking)
    with Writers(tracking, run_id) as writers:
        time.sleep(1.0)
        private_pg.crash()
        crashed = len(writers.acknowledged)
        time.sleep(1.5)
    assert len(writers.acknowledged) > crashed, "no write succeeded after recovery"
    _check_after_fault(writers, tracking, run_id)
