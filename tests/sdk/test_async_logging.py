"""Non-blocking logging: queued, batched per run, flushed at end_run and exit, never lost."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlgrid
from mlgrid import MlflowClient
from mlgrid.async_logging import AsyncLogger, RunOperations
from mlgrid.entities import Metric, Param, RunTag
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.fluent import state
from tests.fixtures.scripts import run_script


@pytest.fixture
def rpc_count(uri: str) -> Iterator[list[int]]:
    """Counts the RPCs the fluent client sends (through the transport's metadata hook)."""
    calls = [0]

    def count() -> list[tuple[str, str]]:
        calls[0] += 1
        return []

    providers = state.client()._transport.metadata_providers
    providers.append(count)
    yield calls
    providers.remove(count)


def test_queued_metrics_are_written_in_few_batches(uri: str, rpc_count: list[int]) -> None:
    run = mlgrid.start_run()
    before = rpc_count[0]
    operations = [
        mlgrid.log_metric("loss", 1.0 / (step + 1), step=step, synchronous=False)
        for step in range(500)
    ]
    mlgrid.log_param("lr", "0.1", synchronous=False)
    mlgrid.set_tag("phase", "warmup", synchronous=False)
    mlgrid.set_tag("phase", "done", synchronous=False)
    assert all(isinstance(op, RunOperations) for op in operations)
    mlgrid.end_run()
    sent = rpc_count[0] - before
    assert all(op.done() for op in operations)
    history = MlflowClient(uri).get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(500))
    finished = mlgrid.get_run(run.info.run_id)
    assert finished.data.params == {"lr": "0.1"}
    assert finished.data.tags["phase"] == "done"
    assert finished.info.status == "FINISHED"
    # 502 logging calls and end_run: a handful of batches, not one RPC each.
    assert sent < 20, sent


def test_environment_switches_logging_to_the_queue(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    with mlgrid.start_run() as run:
        operation = mlgrid.log_metric("m", 2.0)
        assert isinstance(operation, RunOperations)
        # synchronous=True still blocks and returns nothing.
        assert mlgrid.log_metric("n", 1.0, synchronous=True) is None
    assert mlgrid.get_run(run.info.run_id).data.metrics == {"m": 2.0, "n": 1.0}


def test_config_enables_async_logging(uri: str) -> None:
    mlgrid.config.enable_async_logging()
    with mlgrid.start_run():
        assert isinstance(mlgrid.log_param("p", 1), RunOperations)
    mlgrid.config.enable_async_logging(False)
    with mlgrid.start_run():
        assert mlgrid.log_param("p", 1) == 1


def test_failure_surfaces_at_end_run_and_the_run_still_ends(uri: str) -> None:
    run = mlgrid.start_run()
    mlgrid.log_param("lr", "0.1", synchronous=False)
    mlgrid.log_param("lr", "0.2", synchronous=False)  # conflicts: params are write-once
    mlgrid.log_metric("m", 1.0, synchronous=False)
    with pytest.raises(InvalidParameterValue, match=f"{run.info.run_id}.*lr"):
        mlgrid.end_run()
    assert mlgrid.active_run() is None
    ended = mlgrid.get_run(run.info.run_id)
    assert ended.info.status == "FINISHED"
    assert ended.data.params == {"lr": "0.1"}  # the valid writes went through
    mlgrid.flush_async_logging()  # reported once, not again


def test_failure_seen_through_wait_is_not_raised_again(uri: str) -> None:
    with mlgrid.start_run():
        mlgrid.log_param("k", "a")
        operation = mlgrid.log_param("k", "b", synchronous=False)
        with pytest.raises(InvalidParameterValue, match="k"):
            operation.wait(timeout=30)
    # Leaving the block ended the run without raising: the failure was already reported.


def test_failure_at_exit_is_printed(
    embedded_uri: str, tmp_path: Path, sdk_env: dict[str, str]
) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import mlgrid\n"
        "mlgrid.start_run()\n"
        "mlgrid.log_param('p', '1', synchronous=False)\n"
        "mlgrid.log_param('p', '2', synchronous=False)\n"
    )
    sdk_env["MLGRID_TRACKING_URI"] = embedded_uri
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=sdk_env, capture_output=True, text=True
    )
    assert "INVALID_PARAMETER_VALUE" in done.stderr and "'p'" in done.stderr, done.stderr


def test_batches_group_per_run_and_split_conflicting_params() -> None:
    sent: list[tuple[str, list[Metric], list[Param], list[RunTag]]] = []
    logger = AsyncLogger(
        lambda run_id, m, p, t: sent.append((run_id, list(m), list(p), list(t))),
        batch_interval=5.0,  # only the flush ends the gathering
    )
    logger.log("a", metrics=[Metric("m", 1.0, 1, 0)])
    logger.log("b", params=[Param("x", "1")])
    logger.log("a", params=[Param("x", "1")], tags=[RunTag("t", "old")])
    logger.log("a", params=[Param("x", "1")], tags=[RunTag("t", "new")])  # same value: merged
    logger.log("a", params=[Param("x", "2")])  # conflict: its own batch
    logger.flush()
    summary = [
        (run, len(m), [(x.key, x.value) for x in p], [(x.key, x.value) for x in t])
        for run, m, p, t in sent
    ]
    assert summary == [
        ("a", 1, [("x", "1")], [("t", "new")]),
        ("b", 0, [("x", "1")], []),
        ("a", 0, [("x", "2")], []),
    ]


_FORKED_QUEUES = """
import os, sys, time
import mlgrid
from mlgrid.exceptions import InvalidParameterValue

mlgrid.set_tracking_uri(sys.argv[1])
with mlgrid.start_run() as run:
    mlgrid.log_param("p", "1")
    failing = mlgrid.log_param("p", "2", synchronous=False)  # the parent's failure
    while not failing.done():
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            mlgrid.log_metric("child", 1.0, synchronous=False).wait(timeout=30)
            mlgrid.flush_async_logging()  # the child's own writes only: nothing failed
            code = 0
        except InvalidParameterValue:
            code = 2  # the parent's failure, reported by the child
        finally:
            os._exit(code)
    child = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        mlgrid.flush_async_logging()
        parent = "unreported"
    except InvalidParameterValue:
        parent = "reported"
print(run.info.run_id, child, parent, flush=True)
"""


def test_a_forked_child_writes_and_reports_only_its_own_queued_logging(
    embedded_uri: str, tmp_path: Path
) -> None:
    stdout = run_script(tmp_path, "forked_queues", _FORKED_QUEUES, embedded_uri)
    run_id, child, parent = stdout.split()
    assert (child, parent) == ("0", "reported")  # 2: the child reported the parent's failure
    assert MlflowClient(embedded_uri).get_run(run_id).data.metrics == {"child": 1.0}
