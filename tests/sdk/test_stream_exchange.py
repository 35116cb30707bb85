"""A server stream taking each request with the reply to the one before, in one batch
(mlgrid_services/common/stream_exchange.py), against real gRPC servers on port 0: what a client
sees as the handler answers, ends, aborts, is cancelled or meets bytes that do not parse, and
that a service's call pipelines run on it by default. The pipelines themselves are tested end to
end, with and without it, in test_call_pipeline.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.client import Client
from mlgrid.transport import Transport
from mlgrid_services.common import stream_exchange
from mlgrid_services.common.stream_exchange import StreamExchange
from tests.fixtures.stack import start_stack

METHOD = "/test.Exchange/Run"
Request = common_pb2.CallPipelineServiceRunRequest
Reply = common_pb2.CallPipelineServiceRunResponse
Handler = Callable[[Any, grpc.ServicerContext], Iterator[bytes]]


def _same(data: bytes) -> bytes:
    return data


def request(method: str) -> bytes:
    return Request(method=method).SerializeToString()


def reply_text(data: bytes) -> str:
    return Reply.FromString(data).message


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], grpc.Channel]]:
    """Serves a stream handler (requests arrive as grpcio's own request iterator) on a real
    server on port 0; returns a channel to it."""
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def start(handler: Handler) -> grpc.Channel:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.Exchange",
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


class Outgoing:
    """Requests a test sends on a public-API stream one at a time."""

    def __init__(self) -> None:
        self._items: list[bytes | None] = []
        self._ready = threading.Condition()

    def put(self, item: bytes | None) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._items))
                item = self._items.pop(0)
            if item is None:
                return
            yield item


def test_each_request_is_taken_with_the_reply_to_the_one_before(serve) -> None:
    ended = threading.Event()

    def numbered(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        assert stream_exchange.supported(requests)
        exchange = StreamExchange(requests, Request.FromString)
        answer = None
        number = 0
        while (call := exchange.exchange(answer)) is not None:
            answer = Reply(message=f"{number}:{call.method}")
            number += 1
        ended.set()  # the client half-closed: the last reply went in the final batch
        return iter(())

    outgoing = Outgoing()
    replies = serve(numbered).stream_stream(METHOD, _same, _same)(
        iter(outgoing), metadata=[("x-who", "me")], timeout=10
    )
    received = []
    for method in ("a", "b", ""):
        outgoing.put(request(method))
        received.append(reply_text(next(replies)))
    assert received == ["0:a", "1:b", "2:"]
    assert replies.initial_metadata() is not None  # headers went before the first reply
    outgoing.put(None)
    assert list(replies) == []
    assert replies.code() is grpc.StatusCode.OK
    assert ended.wait(5)


def test_a_last_reply_sent_alone_reaches_the_client_before_the_end(serve) -> None:
    def one_then_done(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        exchange = StreamExchange(requests, Request.FromString)
        call = exchange.exchange(None)
        assert call is not None
        exchange.send(Reply(message=f"last:{call.method}"))
        return iter(())

    outgoing = Outgoing()
    replies = serve(one_then_done).stream_stream(METHOD, _same, _same)(iter(outgoing), timeout=10)
    outgoing.put(request("x"))
    assert [reply_text(r) for r in replies] == ["last:x"]
    assert replies.code() is grpc.StatusCode.OK
    outgoing.put(None)


def test_an_abort_after_exchanges_ends_the_stream_with_its_code(serve) -> None:
    def refuse_the_second(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        exchange = StreamExchange(requests, Request.FromString)
        first = exchange.exchange(None)
        assert first is not None
        second = exchange.exchange(Reply(message="first"))
        assert second is not None
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"no room for {second.method}")

    outgoing = Outgoing()
    replies = serve(refuse_the_second).stream_stream(METHOD, _same, _same)(
        iter(outgoing), timeout=10
    )
    outgoing.put(request("a"))
    assert reply_text(next(replies)) == "first"
    outgoing.put(request("b"))
    with pytest.raises(grpc.RpcError) as ended:
        next(replies)
    assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ended.value.details() == "no room for b"
    outgoing.put(None)


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_a_handler_waiting_for_a_request_is_released_when_the_call_ends(serve, how: str) -> None:
    got: list[object] = []
    released = threading.Event()

    def wait_for_more(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        exchange = StreamExchange(requests, Request.FromString)
        got.append(exchange.exchange(None))
        got.append(exchange.exchange(Reply(message="one")))  # waits: the client sends no more
        released.set()
        return iter(())

    outgoing = Outgoing()
    replies = serve(wait_for_more).stream_stream(METHOD, _same, _same)(
        iter(outgoing), timeout=10 if how == "cancel" else 1
    )
    outgoing.put(request("a"))
    assert reply_text(next(replies)) == "one"
    started = time.monotonic()
    if how == "cancel":
        replies.cancel()
    assert released.wait(5), "the handler still waits for a request of an ended call"
    assert time.monotonic() - started < 4
    assert got[1] is None
    expected = grpc.StatusCode.CANCELLED if how == "cancel" else grpc.StatusCode.DEADLINE_EXCEEDED
    assert replies.code() is expected
    outgoing.put(None)


def test_a_request_that_does_not_parse_raises_without_echoing_it(serve) -> None:
    raised: list[BaseException] = []

    def parse_one(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        exchange = StreamExchange(requests, Request.FromString)
        try:
            exchange.exchange(None)
        except Exception as err:  # what the handler meets, kept for the test
            raised.append(err)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return iter(())

    outgoing = Outgoing()
    replies = serve(parse_one).stream_stream(METHOD, _same, _same)(iter(outgoing), timeout=10)
    outgoing.put(b"\xff" * 64)  # not a protobuf message
    with pytest.raises(grpc.RpcError) as ended:
        next(replies)
    assert ended.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert ended.value.details() == "a request of the stream does not parse"
    assert len(raised) == 1 and "\\xff" not in str(raised[0])
    outgoing.put(None)


def test_it_is_used_only_on_grpcios_own_request_iterator_and_with_the_setting_on(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def check(requests: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        seen.append(stream_exchange.supported(requests))
        yield from ()

    channel = serve(check)
    assert list(channel.stream_stream(METHOD, _same, _same)(iter(()), timeout=10)) == []
    monkeypatch.setenv("MLGRID_GRPC_SERVER_STREAM_EXCHANGES", "false")
    assert list(channel.stream_stream(METHOD, _same, _same)(iter(()), timeout=10)) == []
    assert seen == [True, False]
    assert stream_exchange.supported(iter([request("a")])) is False  # not a server's stream


@pytest.mark.parametrize("exchanges", [True, False])
def test_a_services_pipelines_take_their_calls_in_exchanges_by_default(
    tmp_path, monkeypatch: pytest.MonkeyPatch, exchanges: bool
) -> None:
    taken: list[object] = []
    original = StreamExchange.exchange

    def counted(self: StreamExchange[Any], reply: Any) -> Any:
        call = original(self, reply)
        taken.append(call)
        return call

    monkeypatch.setattr(StreamExchange, "exchange", counted)
    if not exchanges:
        monkeypatch.setenv("MLGRID_GRPC_SERVER_STREAM_EXCHANGES", "false")
    with start_stack(tmp_path, services=["tracking"]) as stack:
        transport = Transport(stack.tracking_uri)
        try:
            client = Client(transport=transport)
            run_id = client.create_run(client.create_experiment("exchanges")).info.run_id
            for step in range(5):
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
            history = client.get_metric_history(run_id, "loss")
        finally:
            transport.close()
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    methods = [c.method.rsplit("/", 1)[-1] for c in taken if c is not None]  # type: ignore[attr-defined]
    # With the setting on, every write of the loop came to the service in an exchange.
    assert methods == (["LogMetric"] * 5 if exchanges else [])
