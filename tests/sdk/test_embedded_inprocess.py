"""Embedded mode's in-process channel answers exactly as a socket does, and keeps what it
acknowledged when its process is killed.

The SDK's embedded calls run the servicers in the caller's thread (services/common/inprocess.py)
instead of going through a private unix socket. These tests run the same calls both ways and
compare what a user sees: results, typed errors with their MLflow error codes and messages,
streamed metric histories, artifacts, the registry (whose service reaches tracking over the
embedded stack's socket).
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import grpc
import pytest

from mlgrid import MlflowClient
from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.client import Client
from mlgrid.entities import Metric, Param, RunTag
from mlgrid.exceptions import MlgridException, TemporarilyUnavailable
from mlgrid.protocol import CHANNEL_OPTIONS, MAX_MESSAGE_BYTES
from mlgrid.transport import get_transport
from mlgrid_services import launcher
from mlgrid_services.common.inprocess import InProcessChannel
from tests.fixtures.scripts import clean_environment, run_script
from tests.fixtures.stack import start_stack

#: Ids and times differ between two stores; everything else must match.
_IDS = re.compile(r"\b[0-9a-f]{32}\b")


def _outcome(step: Any) -> Any:
    """What a user sees of one call: its result, or its error's type, code and message."""
    try:
        return ("ok", step())
    except MlgridException as exc:
        return ("error", type(exc).__name__, exc.error_code, _IDS.sub("<id>", exc.message))


def _run_data(client: Client, run_id: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    return {
        "status": run.info.status,
        "lifecycle": run.info.lifecycle_stage,
        "name": run.info.run_name,
        # NaN is not equal to itself: compared by name.
        "metrics": {k: "NaN" if math.isnan(v) else v for k, v in run.data.metrics.items()},
        "params": dict(run.data.params),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    }


def _history(client: Client, run_id: str, key: str) -> list[tuple[int, Any, int]]:
    return [
        (m.step, "NaN" if math.isnan(m.value) else m.value, m.timestamp)
        for m in client.get_metric_history(run_id, key)
    ]


def _session(client: Client, workdir: Path) -> dict[str, Any]:
    """A shared set of SDK calls; returns what each call showed, ids blanked."""
    seen: dict[str, Any] = {}
    experiment_id = client.create_experiment("parity", tags={"team": "a"})
    seen["duplicate experiment"] = _outcome(lambda: client.create_experiment("parity"))
    seen["experiment tags"] = _outcome(lambda: client.get_experiment_by_name("parity").tags)
    run = client.create_run(experiment_id, run_name="first", tags={"k": "v"})
    run_id = run.info.run_id
    client.log_param(run_id, "lr", "0.1")
    seen["param changed"] = _outcome(lambda: client.log_param(run_id, "lr", "0.2"))
    seen["param key too long"] = _outcome(lambda: client.log_param(run_id, "p" * 300, "x"))
    for step in range(20):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=1_000 + step, step=step)
    client.log_metric(run_id, "nan", float("nan"), timestamp=5, step=0)
    client.log_batch(
        run_id,
        metrics=[Metric(f"m{k}", float(k), 7, 0) for k in range(100)],
        params=[Param("batch", "yes")],
        tags=[RunTag("stage", "dev")],
    )
    seen["bad metric key"] = _outcome(lambda: client.log_metric(run_id, "bad//key", 1.0))
    seen["empty metric key"] = _outcome(lambda: client.log_metric(run_id, "", 1.0))
    seen["unknown run"] = _outcome(lambda: client.get_run("0" * 32))
    seen["unknown experiment"] = _outcome(lambda: client.get_experiment("123456789"))
    seen["run"] = _outcome(lambda: _run_data(client, run_id))
    seen["loss history"] = _outcome(lambda: _history(client, run_id, "loss"))
    seen["nan history"] = _outcome(lambda: _history(client, run_id, "nan"))
    search = "metrics.loss < 0.5 and params.lr = '0.1'"
    seen["search"] = _outcome(
        lambda: [r.info.run_name for r in client.search_runs([experiment_id], search)]
    )
    seen["bad search"] = _outcome(lambda: client.search_runs([experiment_id], "metrics.loss <<< 1"))
    artifact = workdir / "notes.txt"
    artifact.write_text("hello\n" * 1000)
    client.log_artifact(run_id, str(artifact), "docs")
    seen["artifacts"] = _outcome(
        lambda: [(f.path, f.file_size) for f in client.list_artifacts(run_id, "docs")]
    )
    fetched = client.download_artifacts(run_id, "docs/notes.txt", str(workdir / "fetched"))
    seen["downloaded"] = Path(fetched).read_text() == artifact.read_text()
    # The registry service starts on this call; it asks tracking about the run over the
    # embedded stack's socket.
    client.create_registered_model("parity-model")
    seen["duplicate model"] = _outcome(lambda: client.create_registered_model("parity-model"))
    version = client.create_model_version("parity-model", f"runs:/{run_id}/docs", run_id=run_id)
    seen["model version"] = (version.version, version.run_id == run_id)
    client.set_terminated(run_id)
    client.delete_run(run_id)
    seen["deleted run written"] = _outcome(lambda: client.log_metric(run_id, "late", 1.0))
    seen["deleted run"] = _outcome(lambda: _run_data(client, run_id))
    return seen


def test_the_in_process_channel_shows_what_the_socket_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    embedded_dir, socket_dir = tmp_path / "embedded", tmp_path / "socket"
    embedded_dir.mkdir()
    embedded_uri = f"sqlite:///{embedded_dir / 'mlgrid.db'}"
    monkeypatch.setenv("MLGRID_DEFAULT_ARTIFACT_ROOT", (embedded_dir / "artifacts").as_uri())
    embedded = MlflowClient(embedded_uri)
    transport = get_transport(embedded_uri)
    assert transport.embedded and isinstance(transport.channel, InProcessChannel)
    in_process = _session(embedded, embedded_dir)

    with start_stack(socket_dir) as stack:
        remote = MlflowClient(stack.tracking_uri)
        over_socket = _session(remote, socket_dir)
    assert in_process == over_socket
    # What both showed is what a user expects, not two equally empty answers.
    assert in_process["duplicate experiment"][:3] == (
        "error",
        "ResourceAlreadyExists",
        "RESOURCE_ALREADY_EXISTS",
    )
    assert in_process["param changed"][2] == "INVALID_PARAMETER_VALUE"
    assert in_process["unknown run"][2] == "RESOURCE_DOES_NOT_EXIST"
    assert in_process["bad search"][2] == "INVALID_PARAMETER_VALUE"
    run = in_process["run"][1]
    assert run["metrics"]["m99"] == 99.0 and run["metrics"]["nan"] == "NaN"
    assert run["params"] == {"lr": "0.1", "batch": "yes"}
    assert in_process["loss history"][1][-1] == (19, 0.05, 1_019)
    assert in_process["search"] == ("ok", ["first"])
    assert in_process["artifacts"] == ("ok", [("docs/notes.txt", 6000)])
    assert in_process["downloaded"] is True
    assert in_process["model version"] == ("1", True)
    assert in_process["deleted run"][1]["lifecycle"] == "deleted"


def test_both_ways_into_one_embedded_stack_answer_alike(tmp_path: Path) -> None:
    """gRPC-level parity on one store: status codes, details, ErrorInfo, streams."""
    stack = launcher.start_embedded(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        assert stack.services == ["tracking"]  # the others start on their first call
        socket = grpc.insecure_channel(stack.target, options=CHANNEL_OPTIONS)
        # Reading the target serves every service on the socket.
        assert set(stack.services) >= {"tracking", "artifacts"}
        stubs = {
            "inprocess": trk_grpc.TrackingServiceStub(stack.channel),
            "socket": trk_grpc.TrackingServiceStub(socket),
        }
        experiment = stubs["inprocess"].CreateExperiment(trk.CreateExperimentRequest(name="e"))
        run = (
            stubs["socket"]
            .CreateRun(trk.CreateRunRequest(experiment_id=experiment.experiment_id))
            .run.info.run_id
        )
        for step in range(50):
            stub = stubs["inprocess" if step % 2 else "socket"]
            stub.LogMetric(trk.LogMetricRequest(run_id=run, key="x", value=step, step=step))

        def failure(stub: Any, request: Any) -> tuple[Any, ...]:
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetRun(request)
            err = caught.value
            statuses = [v for k, v in err.trailing_metadata() if k == "grpc-status-details-bin"]
            return err.code(), err.details(), statuses

        for request in (trk.GetRunRequest(run_id="f" * 32), trk.GetRunRequest(run_id="")):
            assert failure(stubs["inprocess"], request) == failure(stubs["socket"], request)
            code, details, statuses = failure(stubs["inprocess"], request)
            assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
            assert details and statuses

        # Larger than gRPC lets a client send: refused alike, nothing written.
        huge = trk.LogParamRequest(run_id=run, key="big", value="x" * (MAX_MESSAGE_BYTES + 1))
        for way, stub in stubs.items():
            with pytest.raises(grpc.RpcError) as caught:
                stub.LogParam(huge, timeout=30)
            assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, way
        del huge
        # A call that ends past its deadline is DEADLINE_EXCEEDED for its caller. (A socket's
        # answer to a zero timeout races the server, so only the in-process one is certain.)
        request = trk.GetExperimentRequest(experiment_id=experiment.experiment_id)
        with pytest.raises(grpc.RpcError) as caught:
            stubs["inprocess"].GetExperiment(request, timeout=0)
        assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

        history = trk.StreamMetricHistoryRequest(run_id=run, metric_key="x")
        streamed = {
            way: [list(r.metrics) for r in stub.StreamMetricHistory(history)]
            for way, stub in stubs.items()
        }
        assert streamed["inprocess"] == streamed["socket"]
        assert [m.step for page in streamed["inprocess"] for m in page] == list(range(50))
        socket.close()
    finally:
        stack.stop()


def test_an_unknown_method_is_unimplemented_in_process(tmp_path: Path) -> None:
    stack = launcher.start_embedded(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        call = stack.channel.unary_unary("/mlgrid.api.nothing.v1.Nothing/Call")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"")
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        stack.stop()


def test_a_call_after_the_stack_stopped_is_temporarily_unavailable(tmp_path: Path) -> None:
    stack = launcher.start_embedded(f"sqlite:///{tmp_path / 'stopped.db'}")
    stub = trk_grpc.TrackingServiceStub(stack.channel)
    stub.CreateExperiment(trk.CreateExperimentRequest(name="before"))
    stack.stop()
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateExperiment(trk.CreateExperimentRequest(name="after"))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert isinstance(from_rpc_error(caught.value), TemporarilyUnavailable)


_WRITER = textwrap.dedent(
    """
    import sys
    import mlgrid

    mlgrid.set_tracking_uri(sys.argv[1])
    run = mlgrid.start_run()
    print("run", run.info.run_id, flush=True)
    step = 0
    while True:
        mlgrid.log_metric("loss", float(step), step=step)
        print("acked", step, flush=True)  # only after log_metric returned
        step += 1
    """
)


def test_acknowledged_metrics_survive_kill_9_of_the_embedded_process(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'durable.db'}"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = clean_environment(MLGRID_DEFAULT_ARTIFACT_ROOT=(tmp_path / "artifacts").as_uri())
    child = subprocess.Popen(
        [sys.executable, str(script), store],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    acked = -1
    try:
        assert child.stdout is not None
        first = child.stdout.readline().split()
        assert first[0] == "run", first
        run_id = first[1]
        for line in child.stdout:
            acked = int(line.split()[1])
            if acked >= 300:
                break
        os.kill(child.pid, signal.SIGKILL)  # mid-write: the next call is under way
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    steps = [m.step for m in MlflowClient(store).get_metric_history(run_id, "loss")]
    # Every acknowledged point is there; at most the one in flight may be there too.
    assert steps[: acked + 1] == list(range(acked + 1))
    assert len(steps) in (acked + 1, acked + 2)


_NEWCOMER = """
import sys
import mlgrid
mlgrid.set_tracking_uri(sys.argv[1])
with mlgrid.start_run() as run:
    mlgrid.log_metric("m", 1.0)
tracking_loaded_alembic = "alembic" in sys.modules
mlgrid.set_registry_uri(sys.argv[1])
mlgrid.MlflowClient().create_registered_model("newcomer-model")
print(run.info.run_id, tracking_loaded_alembic, "psycopg" in sys.modules,
      "sqlalchemy.dialects.mysql" in sys.modules,
      "mlgrid_services.common.auth.store" in sys.modules)
"""


def _run_embedded(tmp_path: Path, source: str, name: str) -> tuple[str, str]:
    """Runs ``source`` as a script on a new embedded SQLite store, with no MLGRID_/MLFLOW_
    settings but an artifact root under ``tmp_path``; (its standard output, the store URI)."""
    store = f"sqlite:///{tmp_path / f'{name}.db'}"
    artifacts = (tmp_path / "artifacts").as_uri()
    return run_script(tmp_path, name, source, store, MLGRID_DEFAULT_ARTIFACT_ROOT=artifacts), store


def test_an_embedded_sqlite_script_loads_no_other_databases_driver_or_dialect(
    tmp_path: Path,
) -> None:
    """The newcomer's default (embedded, SQLite), tracking and then the registry: psycopg is only
    for PostgreSQL stores (~50 ms of a script's start), SQLAlchemy's MySQL dialects only for
    MySQL (~18 ms), the auth store only when auth is on (~20 ms), and a new tracking database is
    made from the schema snapshot, without Alembic."""
    stdout, store = _run_embedded(tmp_path, _NEWCOMER, "newcomer")
    run_id, *loaded = stdout.split()
    # alembic, psycopg, SQLAlchemy's MySQL dialect, the auth store
    assert loaded == ["False"] * 4, stdout
    assert MlflowClient(store).get_run(run_id).data.metrics == {"m": 1.0}
    assert MlflowClient(store).get_registered_model("newcomer-model").name == "newcomer-model"


_EXITING = """
import atexit, gc, sys
# Registered before mlgrid starts: runs after mlgrid's own exit hook.
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
import mlgrid
mlgrid.set_tracking_uri(sys.argv[1])
with mlgrid.start_run() as run:
    for step in range(50):
        mlgrid.log_metric("loss", 1.0 / (step + 1), step=step)
print(run.info.run_id, gc.get_freeze_count() > 0, flush=True)
"""


def test_an_embedded_script_exits_without_walking_its_heap_and_keeps_every_point(
    tmp_path: Path,
) -> None:
    """At exit the embedded stack freezes what is alive (the last collections Python runs then
    would walk ~10^5 objects of the loaded services, ~0.1 s); the store is closed before, so
    every acknowledged point is there for the next process."""
    stdout, store = _run_embedded(tmp_path, _EXITING, "exiting")
    first, last = stdout.splitlines()
    run_id, frozen_while_running = first.split()
    assert frozen_while_running == "False"  # nothing is frozen while the script runs
    assert last == "frozen at exit: True"
    history = MlflowClient(store).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(50))
