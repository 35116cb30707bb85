"""A stream run by its caller's thread alone (mlgrid/_grpc_stream.py), against real gRPC servers
on port 0: what it returns and raises as the server answers, ends, fails or goes silent, and when
it is (not) used. The pipelines built on it are tested end to end in test_call_pipeline.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from mlgrid import _fork, _grpc_io, _grpc_stream
from mlgrid._grpc_stream import CallerThreadStream, StreamEnded
from mlgrid.client import Client
from mlgrid.pipeline import _CallerThreadStream, _Stream
from mlgrid.transport import Transport
from tests.fixtures.stack import start_stack

METHOD = "/test.Stream/Run"
Handler = Callable[[Iterator[bytes], grpc.ServicerContext], Iterator[bytes]]


def _same(data: bytes) -> bytes:
    return data


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], grpc.Channel]]:
    """Serves a stream handler on a real server on port 0; returns a channel to it."""
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(handler: Handler) -> grpc.Channel:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.Stream",
                    {"Run": grpc.stream_stream_rpc_method_handler(handler, _same, _same)},
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channels.append(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return channels[-1]

    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(None)


def test_each_exchange_returns_its_own_reply_and_close_ends_the_stream_cleanly(serve) -> None:
    ended = threading.Event()
    seen_metadata: list[tuple[str, str]] = []

    def numbered(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        seen_metadata.extend((m.key, m.value) for m in context.invocation_metadata())
        for number, request in enumerate(requests):
            yield b"%d:%s" % (number, request)
        ended.set()  # the requests ended as a half-close ends them, not by a cancel

    stream = CallerThreadStream(serve(numbered), METHOD, [("x-who", "me")], timeout=10)
    assert [stream.exchange(b"a"), stream.exchange(b"b"), stream.exchange(b"")] == [
        b"0:a",
        b"1:b",
        b"2:",
    ]
    assert ("x-who", "me") in seen_metadata
    stream.close(wait_s=5)
    assert ended.wait(5)
    assert stream.status is not None and stream.status.code() is grpc.StatusCode.OK
    assert stream.finished and stream.close(wait_s=5) is None  # a second close does nothing


def test_a_stream_the_server_refuses_raises_its_code_and_message(serve) -> None:
    def refuse(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "at most 16 pipelines")
        yield b""  # never reached: makes this a generator, as a stream handler is

    stream = CallerThreadStream(serve(refuse), METHOD, [], timeout=10)
    with pytest.raises(StreamEnded) as ended:
        stream.exchange(b"x")
    assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ended.value.details() == "at most 16 pipelines"
    assert isinstance(ended.value, grpc.RpcError)
    with pytest.raises(StreamEnded):  # and stays ended
        stream.exchange(b"y")
    stream.close(wait_s=5)
    assert stream.finished  # every batch taken from its queue, so gRPC freed the call
    stream.cancel()  # harmless now


def test_a_stream_the_server_ends_between_calls_raises_at_the_next_one(serve) -> None:
    def two_only(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _, request in zip(range(2), requests, strict=False):
            yield request

    stream = CallerThreadStream(serve(two_only), METHOD, [], timeout=10)
    assert stream.exchange(b"1") == b"1"
    assert stream.exchange(b"2") == b"2"
    with pytest.raises(StreamEnded) as ended:
        stream.exchange(b"3")
    assert ended.value.code() is grpc.StatusCode.OK  # ended, with no reply for this call


def silent(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in requests:
        time.sleep(10)
        yield b"late"


@pytest.mark.parametrize(
    ("ended_by", "timeout", "code"),
    [
        ("the stream's deadline", 0.3, grpc.StatusCode.DEADLINE_EXCEEDED),
        ("a cancel from another thread", 60.0, grpc.StatusCode.CANCELLED),
    ],
)
def test_a_wait_on_a_silent_server_ends(
    serve, ended_by: str, timeout: float, code: grpc.StatusCode
) -> None:
    stream = CallerThreadStream(serve(silent), METHOD, [], timeout=timeout)
    if code is grpc.StatusCode.CANCELLED:
        threading.Timer(0.2, stream.cancel).start()
    started = time.monotonic()
    with pytest.raises(StreamEnded) as ended:
        stream.exchange(b"x")
    assert ended.value.code() is code, ended_by
    assert time.monotonic() - started < 5


def test_close_cancels_a_stream_whose_server_does_not_end_it(serve) -> None:
    def never_ends(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield next(requests)
        time.sleep(10)  # ignores the half-close

    stream = CallerThreadStream(serve(never_ends), METHOD, [], timeout=60)
    assert stream.exchange(b"x") == b"x"
    started = time.monotonic()
    watchdog = stream.close(wait_s=0.3)
    assert time.monotonic() - started < 5
    assert stream.status is not None and stream.status.code() is grpc.StatusCode.CANCELLED
    assert watchdog is not None


class _PassThrough(grpc.StreamStreamClientInterceptor):
    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(details, requests)


def test_used_only_on_grpcios_own_channel_in_the_tested_range_unless_turned_off(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = serve(silent)
    assert _grpc_stream.supported(channel)  # the dev install's grpcio is in the range
    # Interceptors would be stepped around: an intercepted channel keeps the public API.
    assert not _grpc_stream.supported(grpc.intercept_channel(channel, _PassThrough()))
    monkeypatch.setenv("MLGRID_GRPC_CALLER_THREAD_STREAMS", "false")
    assert not _grpc_stream.supported(channel)
    monkeypatch.delenv("MLGRID_GRPC_CALLER_THREAD_STREAMS")
    monkeypatch.setattr(_grpc_io, "TESTED_GRPCIO", ((1, 0), (1, 1)))
    _grpc_stream._grpcio_tested.cache_clear()
    try:
        assert not _grpc_stream.supported(channel)  # a grpcio it was not tested on
    finally:
        monkeypatch.undo()
        _grpc_stream._grpcio_tested.cache_clear()
    assert _grpc_stream.supported(channel)


@pytest.mark.parametrize("turned_off", [False, True])
def test_a_clients_pipeline_starts_no_thread_on_the_callers_thread_stream(
    tmp_path, monkeypatch: pytest.MonkeyPatch, turned_off: bool
) -> None:
    """What the user's process runs: with the default, opening a pipeline and logging on it
    starts no thread; with the setting off, grpcio's public API starts its request reader."""
    if turned_off:
        monkeypatch.setenv("MLGRID_GRPC_CALLER_THREAD_STREAMS", "false")
    with start_stack(tmp_path, services=["tracking"]) as running:
        transport = Transport(running.tracking_uri)
        try:
            client = Client(transport=transport)
            run_id = client.create_run(client.create_experiment("threads")).info.run_id
            with _fork.threads_started() as all_started:
                for step in range(20):
                    client.log_metric(run_id, "loss", step / 10, step=step)
            # The stack's servers run in this process too, and their pools (thread names
            # "grpc_N", services/common/server.py) start a worker when none is idle at a call's
            # arrival, as for the pipeline's own stream: those are not the client's.
            started = {t for t in all_started if not t.name.startswith("grpc_")}
            stream: Any = transport._pipeline._stream if transport._pipeline else None
            assert stream is not None and stream.answered == 20
            if turned_off:
                assert isinstance(stream, _Stream) and started
            else:
                assert isinstance(stream, _CallerThreadStream)
                assert not started
            assert len(client.get_metric_history(run_id, "loss")) == 20
        finally:
            transport.close()
