"""Faults of the whole ``mlgrid up`` stack, as an operator meets them: SIGTERM while a project
runs (the run is marked before the gateway goes), and kill -9 of every process during writes
(after a restart every acknowledged write is there, and no batch is half there)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

import mlgrid.projects
from mlgrid.client import Client
from mlgrid.entities import Metric
from tests.test_stack import UpProcess, start_up, wait_gone

#: Metrics per batch: a batch is acknowledged (or not) as a whole.
BATCH = 10


def _stop_stack(up: UpProcess) -> None:
    if up.proc.poll() is None:
        for process in up.processes()[::-1]:
            process.kill()
        up.proc.wait(timeout=10)


def _store(up: UpProcess, cwd: Path) -> str:
    """The stack's store, opened in-process once the stack is gone."""
    return up.store_args[1] if up.store_args else f"sqlite:///{cwd / 'mlgrid.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_args(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "postgresql":
        return ["--backend-store-uri", request.getfixturevalue("fresh_postgres_url")]
    return []


def test_sigterm_marks_a_running_project_run_before_the_gateway_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "sleeper"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: sleeper\nentry_points: {main: {command: 'echo started; sleep 120'}}\n"
    )
    up = start_up(tmp_path)
    try:
        monkeypatch.setenv("MLGRID_TRACKING_URI", up.endpoint)
        submitted = mlgrid.projects.run(str(project), backend="local", synchronous=False)
        deadline = time.monotonic() + 60
        while submitted.get_status() != "RUNNING":
            assert time.monotonic() < deadline, submitted.get_status()
            time.sleep(0.2)
        processes = up.processes()
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=60) == 0
        assert wait_gone(processes, timeout=10) == []
    finally:
        _stop_stack(up)
    # Read from the store itself: the stack (and its gateway) is gone.
    run = Client(_store(up, tmp_path)).get_run(submitted.run_id)
    assert run.info.status == "FAILED", run.info.status  # aborted: the service stopped
    assert run.info.end_time


def test_kill_9_of_the_whole_stack_loses_no_acknowledged_write(
    tmp_path: Path, store_args: list[str]
) -> None:
    up = start_up(tmp_path, *store_args)
    up.store_args = store_args
    acknowledged: list[int] = []
    failures: list[str] = []
    stop = threading.Event()
    try:
        client = Client(up.endpoint)
        experiment = client.create_experiment(f"faults-{time.time_ns()}")
        run_id = client.create_run(experiment).info.run_id

        def write() -> None:
            step = 0
            while not stop.is_set():
                metrics = [Metric(f"m{k}", float(step), 0, step) for k in range(BATCH)]
                try:
                    client.log_batch(run_id, metrics=metrics)
                except Exception as exc:  # the stack is gone: this batch is not acknowledged
                    failures.append(type(exc).__name__)
                    return
                acknowledged.append(step)
                step += 1

        writers = [threading.Thread(target=write, daemon=True)]
        writers[0].start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 50:
            assert time.monotonic() < deadline and writers[0].is_alive(), failures
            time.sleep(0.05)
        processes = up.processes()
        for process in processes:  # every process of the stack at once, mid-write
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        # No stop signal here: a writer told to stop between two calls would end without
        # meeting the dead stack; its next call must fail by itself.
        writers[0].join(timeout=120)
        assert wait_gone(processes, timeout=10) == []
    finally:
        stop.set()
        _stop_stack(up)
    assert failures, "the writer never saw the stack go"

    again = start_up(tmp_path, *store_args)
    try:
        history = {
            key: {m.step for m in Client(again.endpoint).get_metric_history(run_id, key)}
            for key in (f"m{k}" for k in range(BATCH))
        }
    finally:
        again.proc.send_signal(signal.SIGTERM)
        again.proc.wait(timeout=60)
        _stop_stack(again)
    steps = history["m0"]
    # Every acknowledged batch is there, whole …
    assert set(acknowledged) <= steps, sorted(set(acknowledged) - steps)[:10]
    # … and a batch is all there or not at all (one in flight at the kill may have landed).
    assert all(history[key] == steps for key in history), history
    assert steps - set(acknowledged) <= {len(acknowledged)}
    print(
        f"kill -9 of the stack: {len(acknowledged)} acknowledged batches, all there after restart"
    )
