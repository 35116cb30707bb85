"""Call pipelines: the SDK's small idempotent tracking writes ride one stream on the tunnel.

Real gateway with its tunnel port, real tracking service on port 0, real SQLite; the SDK's
Client as a user runs it. What a user sees must not change with the pipeline: the same stored
points, the same typed errors; what it saves is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.entities import Metric, Param
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.limits import MAX_PIPELINES
from mlgrid.pipeline import NOT_CARRIED, Pipeline
from mlgrid.transport import Transport
from tests.fixtures.stack import Stack, start_stack

TRACKING = "mlgrid.api.tracking.v1.TrackingService"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("pipeline"), services=["tracking"]) as running:
        yield running


@pytest.fixture(autouse=True, params=["caller-thread", "public-api"])
def stream_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both kinds of stream: the caller's thread alone (the default where
    grpcio is in the tested range) and grpcio's public API (the fallback)."""
    if request.param == "public-api":
        monkeypatch.setenv("MLGRID_GRPC_CALLER_THREAD_STREAMS", "false")
    return str(request.param)


@pytest.fixture
def new_client(stack: Stack) -> Iterator[Callable[[], Client]]:
    """Makes clients with transports of their own (the process-wide one is shared by other
    tests), closed after the test so no stream of theirs holds a server slot."""
    transports: list[Transport] = []

    def make() -> Client:
        transports.append(Transport(stack.tracking_uri))
        return Client(transport=transports[-1])

    yield make
    for transport in transports:
        transport.close()


def pipeline_of(client: Client) -> Pipeline:
    pipeline = client._transport._pipeline
    assert pipeline is not None, "the client made no pipelined call"
    return pipeline


def a_run(client: Client, name: str) -> str:
    return client.create_run(client.create_experiment(f"{name}-{time.time_ns()}")).info.run_id


def tunnel_channel(stack: Stack) -> grpc.Channel:
    assert stack.gateway.tunnel is not None
    return grpc.insecure_channel(
        "mlgrid.tunnel:1",
        options=[
            ("grpc.http_proxy", f"http://127.0.0.1:{stack.gateway.tunnel.port}"),
            ("grpc.http_connect_headers", f"mlgrid-service:{TRACKING}"),
        ],
    )


def test_writes_in_a_loop_ride_one_stream_and_are_all_stored(
    stack: Stack, new_client: Callable[[], Client]
) -> None:
    client = new_client()
    run_id = a_run(client, "loop")
    for step in range(200):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.log_param(run_id, "lr", "0.01")
    client.set_tag(run_id, "phase", "train")
    client.log_batch(run_id, metrics=[Metric("acc", 0.5, 1, 3)], params=[Param("bs", "32")])
    stream = pipeline_of(client)._stream
    assert stream is not None and stream.answered == 203  # one stream carried every write
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(200))
    assert history[9].value == pytest.approx(0.1)
    run = client.get_run(run_id)
    assert run.data.params == {"lr": "0.01", "bs": "32"}
    assert run.data.tags["phase"] == "train"
    assert run.data.metrics["acc"] == 0.5


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_failed_pipelined_write_raises_what_a_call_of_its_own_raises(
    new_client: Callable[[], Client], monkeypatch: pytest.MonkeyPatch, pipelined: bool
) -> None:
    monkeypatch.setenv("MLGRID_CALL_PIPELINE", "true" if pipelined else "false")
    client = new_client()
    run_id = a_run(client, "errors")
    missing = "f" * 32
    with pytest.raises(ResourceDoesNotExist, match=f"Run '{missing}' not found"):
        client.log_metric(missing, "loss", 1.0)
    client.log_param(run_id, "lr", "0.01")
    with pytest.raises(InvalidParameterValue, match="Changing param values is not allowed"):
        client.log_param(run_id, "lr", "0.02")
    client.log_metric(run_id, "loss", 2.0)  # the stream goes on after an error
    assert client.get_run(run_id).data.metrics["loss"] == 2.0
    assert client.get_run(run_id).data.params == {"lr": "0.01"}
    assert (client._transport._pipeline is not None) is pipelined


def test_a_lost_stream_costs_no_call_the_write_is_made_on_its_own(
    stack: Stack, new_client: Callable[[], Client]
) -> None:
    client = new_client()
    run_id = a_run(client, "lost")
    client.log_metric(run_id, "loss", 1.0, step=0)
    pipeline = pipeline_of(client)
    first = pipeline._stream
    assert first is not None
    first.abandon()  # cancels it, as a connection dropping would
    client.log_metric(run_id, "loss", 2.0, step=1)  # made on its own, after the lost stream
    assert pipeline._stream is None
    client.log_metric(run_id, "loss", 3.0, step=2)  # a new stream
    assert pipeline._stream is not None and pipeline._stream is not first
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (0, 1.0),
        (1, 2.0),
        (2, 3.0),
    ]


def test_a_stream_is_replaced_before_its_deadline_and_when_metadata_changes(
    stack: Stack, new_client: Callable[[], Client]
) -> None:
    client = new_client()
    run_id = a_run(client, "renew")
    client.set_tag(run_id, "a", "1")
    pipeline = pipeline_of(client)
    first = pipeline._stream
    assert first is not None
    first.renew_at = time.monotonic() - 1  # as if it had been open for 25 s
    client.set_tag(run_id, "b", "2")
    second = pipeline._stream
    assert second is not None and second is not first and second.answered == 1
    request = pb.SetTagRequest(run_id=run_id, key="c", value="3")
    answer = pipeline.call(f"/{TRACKING}/SetTag", request, pb.SetTagResponse, [("x-other", "1")])
    assert answer == pb.SetTagResponse()
    assert pipeline._stream is not second  # other metadata: another stream
    assert client.get_run(run_id).data.tags.keys() >= {"a", "b", "c"}


def test_only_idempotent_methods_can_be_pipelined(
    stack: Stack, new_client: Callable[[], Client]
) -> None:
    client = new_client()
    experiment_id = client.create_experiment(f"not-idempotent-{time.time_ns()}")
    with tunnel_channel(stack) as channel:
        replies = list(
            common_pb2_grpc.CallPipelineServiceStub(channel).Run(
                iter(
                    [
                        common_pb2.CallPipelineServiceRunRequest(
                            method=f"/{TRACKING}/CreateRun",
                            request=pb.CreateRunRequest(
                                experiment_id=experiment_id
                            ).SerializeToString(),
                        ),
                        common_pb2.CallPipelineServiceRunRequest(method="/x.Y/" + "Z" * 5000),
                    ]
                ),
                timeout=10,
            )
        )
    assert [r.code for r in replies] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * 2
    assert "'/mlgrid.api.tracking.v1.TrackingService/CreateRun' cannot be pipelined" in (
        replies[0].message
    )
    assert len(replies[1].message) < 400  # the bad name is not echoed whole
    assert client.search_runs([experiment_id]) == []  # nothing was created


def test_a_pipeline_without_a_short_deadline_is_refused(
    stack: Stack, new_client: Callable[[], Client]
) -> None:
    with tunnel_channel(stack) as channel:
        run = common_pb2_grpc.CallPipelineServiceStub(channel).Run
        for timeout in (None, 3600):
            with pytest.raises(grpc.RpcError) as refused:
                list(run(iter([common_pb2.CallPipelineServiceRunRequest()]), timeout=timeout))
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "deadline of at most 30 s" in refused.value.details()


def test_beyond_the_servers_pipelines_the_client_calls_on_its_own(
    stack: Stack, new_client: Callable[[], Client]
) -> None:
    """Every slot taken (each holds a worker thread): the next client is refused a pipeline,
    makes its calls on its own and loses none; it tries again after a pause."""
    release = threading.Event()

    def holding() -> Iterator[common_pb2.CallPipelineServiceRunRequest]:
        release.wait(20)  # sends nothing: the stream stays open, holding its slot
        yield from ()

    held = []
    with tunnel_channel(stack) as channel:
        run = common_pb2_grpc.CallPipelineServiceStub(channel).Run
        held = [run(holding(), timeout=20) for _ in range(MAX_PIPELINES)]
        try:
            client = new_client()
            run_id = a_run(client, "refused")
            request = pb.LogMetricRequest(run_id=run_id, key="loss", value=1.0)
            pipeline = Pipeline(channel)
            deadline = time.monotonic() + 10  # the holders' streams reach the server
            while pipeline._paused_until == 0 and time.monotonic() < deadline:
                answer = pipeline.call(f"/{TRACKING}/LogMetric", request, pb.LogMetricResponse, [])
                if answer is not NOT_CARRIED:
                    time.sleep(0.05)
            assert pipeline._paused_until > time.monotonic() + 20
            for step in range(5):
                client.log_metric(run_id, "loss", float(step), step=step)
            assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(5))
            assert client._transport._pipeline is not None
            assert client._transport._pipeline._paused_until > time.monotonic()
        finally:
            release.set()
            for replies in held:
                replies.cancel()


def test_a_server_stops_at_once_though_a_client_keeps_its_pipeline_open(
    tmp_path: Path,
) -> None:
    """An open pipeline is a call in flight to gRPC: the stop would wait out its grace period
    (5 s) for every client that keeps one. The server ends idle pipelines when it stops."""
    with start_stack(tmp_path, services=["tracking"]) as running:
        transport = Transport(running.tracking_uri)
        client = Client(transport=transport)
        run_id = a_run(client, "stop")
        client.log_metric(run_id, "loss", 1.0)
        assert pipeline_of(client)._stream is not None
        started = time.monotonic()
        running.servers["tracking"].stop(5.0)
        assert time.monotonic() - started < 2.0
        transport.close()


def test_a_big_batch_goes_on_its_own(new_client: Callable[[], Client]) -> None:
    """Beside a 1,000-point batch a call's fixed cost is small; pipelined it would only be
    copied twice more."""
    client = new_client()
    run_id = a_run(client, "big")
    client.log_metric(run_id, "small", 1.0)
    stream = pipeline_of(client)._stream
    assert stream is not None and stream.answered == 1
    client.log_batch(run_id, metrics=[Metric("big", float(i), 1, i) for i in range(1000)])
    client.log_batch(run_id, metrics=[Metric("few", 1.0, 1, 0), Metric("few", 2.0, 1, 1)])
    assert stream.answered == 2  # the small batch only
    assert len(client.get_metric_history(run_id, "big")) == 1000
    assert len(client.get_metric_history(run_id, "few")) == 2


class _Interrupted(BaseException):
    """What Ctrl-C raises (KeyboardInterrupt) without touching pytest's own handling of it."""


def test_a_call_interrupted_while_waiting_leaves_no_reply_for_the_next_one(
    tmp_path: Path,
) -> None:
    """Ctrl-C in a notebook lands mostly while a logging loop waits for a reply; the reply
    still comes and must not be taken as the answer to the user's next call."""
    with start_stack(tmp_path, services=["tracking"]) as running:
        transport = Transport(running.tracking_uri)
        try:
            client = Client(transport=transport)
            run_id = a_run(client, "interrupted")
            client.log_param(run_id, "lr", "0.1")
            blocker = sqlite3.connect(tmp_path / "mlgrid.db", isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")  # the next write waits for the lock

            def interrupt(_signum: int, _frame: object) -> None:
                raise _Interrupted()

            previous = signal.signal(signal.SIGALRM, interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            try:
                with pytest.raises(_Interrupted):
                    client.log_metric(run_id, "loss", 1.0)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                blocker.execute("ROLLBACK")
                blocker.close()
            # The interrupted call's reply (a success, once the lock went) is not this one's.
            with pytest.raises(InvalidParameterValue, match="lr"):
                client.log_param(run_id, "lr", "0.2")
            client.log_metric(run_id, "loss", 2.0, step=1)
            assert [m.step for m in client.get_metric_history(run_id, "loss")][-1] == 1
        finally:
            transport.close()


def test_before_a_fork_a_call_under_way_on_another_thread_is_waited_for(tmp_path: Path) -> None:
    """The non-blocking logger writes from a thread of its own: a fork made meanwhile waits for
    that call and then ends the stream (an open stream makes gRPC skip its fork preparation)."""
    with start_stack(tmp_path, services=["tracking"]) as running:
        transport = Transport(running.tracking_uri)
        try:
            client = Client(transport=transport)
            run_id = a_run(client, "busy")
            client.log_metric(run_id, "loss", 1.0)
            pipeline = pipeline_of(client)
            blocker = sqlite3.connect(
                tmp_path / "mlgrid.db", isolation_level=None, check_same_thread=False
            )
            blocker.execute("BEGIN EXCLUSIVE")  # the other thread's write waits for the lock
            writer = threading.Thread(target=client.log_metric, args=(run_id, "loss", 2.0, None, 1))
            writer.start()
            deadline = time.monotonic() + 5
            while not pipeline._lock.locked() and time.monotonic() < deadline:
                time.sleep(0.001)
            assert pipeline._lock.locked(), "the writer's call never started"
            release = threading.Timer(0.3, lambda: blocker.execute("ROLLBACK"))
            release.start()
            threads = pipeline.end_before_fork(time.monotonic() + 5)
            writer.join(5)
            release.join()
            blocker.close()
            assert pipeline._stream is None and threads  # ended, its threads to wait for
            assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1]
        finally:
            transport.close()
