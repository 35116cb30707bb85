"""What a round trip costs Python's gRPC alone: the floor under the cpu phase's figure.

A pipelined ``log_metric`` is one message each way on a stream that stays open
(services/common/pipeline.py). This measures exactly that shape with nothing else in it: a
bare gRPC server in one process whose handler echoes each message back at once, and a client in
another sending the same bytes a pipelined ``log_metric`` sends (its ``CallPipelineServiceRun``
request and reply, built from the real messages) and waiting for each reply, as the SDK does:
on the caller's thread alone (mlgrid/_grpc_stream.py) where the SDK would, else (and with
``--public-api``) through grpcio's public streaming API.
No database, no gateway, no servicer: the summed CPU of the two processes per round trip is what
any Python gRPC client and server pay before doing any work, on this machine, in this run.

``python -m bench.scale.grpc_floor [--calls N] [--public-api]`` prints it; the cpu phase reports
it beside mlgrid's own figure (phases.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import queue
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

_METHOD = "/bench.Floor/Echo"
_WARMUP = 300


def _same(data: bytes) -> bytes:
    return data


def pipelined_log_metric_bytes() -> tuple[bytes, bytes]:
    """A pipelined ``log_metric``'s request and reply as they go on the wire."""
    from mlgrid.api.common.v1 import common_pb2
    from mlgrid.api.tracking.v1 import tracking_service_pb2 as tracking_pb2

    call = tracking_pb2.LogMetricRequest(
        run_id="0" * 32, key="loss", value=0.123456789, timestamp=1_765_000_000_000, step=12345
    )
    request = common_pb2.CallPipelineServiceRunRequest(
        method="/mlgrid.api.tracking.v1.TrackingService/LogMetric",
        request=call.SerializeToString(),
    )
    reply = common_pb2.CallPipelineServiceRunResponse(
        response=tracking_pb2.LogMetricResponse().SerializeToString()
    )
    return request.SerializeToString(), reply.SerializeToString()


def serve(reply: bytes) -> None:
    """Serves the echo stream on a free port, prints the port, runs until killed."""
    importlib.import_module("mlgrid")  # before grpc, as every mlgrid process (mlgrid/_grpc_io.py)
    import grpc

    def echo(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        for _ in requests:
            yield reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Floor", {"Echo": grpc.stream_stream_rpc_method_handler(echo, _same, _same)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def measure(calls: int, *, public_api: bool = False) -> dict[str, float]:
    """Client and server CPU (ms) and wall time (ms) per echoed round trip, over ``calls``;
    ``caller_thread`` in the answer says which client ran them."""
    importlib.import_module("mlgrid")  # before grpc, as every mlgrid process (mlgrid/_grpc_io.py)
    import grpc
    import psutil

    from bench.scale.paired_cpu import paired_cpu
    from mlgrid import _grpc_stream

    request, reply = pipelined_log_metric_bytes()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.scale.grpc_floor", "--serve", reply.hex()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        served_by = psutil.Process(server.pid)
        outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def requests() -> Iterator[bytes]:
            while (item := outgoing.get()) is not None:
                yield item

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            caller_thread = not public_api and _grpc_stream.supported(channel)
            if caller_thread:
                grpc.channel_ready_future(channel).result(timeout=10)
                stream = _grpc_stream.CallerThreadStream(channel, _METHOD, (), timeout=3600)
                exchange = stream.exchange
            else:
                replies: Any = channel.stream_stream(_METHOD, _same, _same)(requests())

                def exchange(message: bytes) -> bytes:
                    outgoing.put(message)
                    return next(replies)  # type: ignore[no-any-return]

            def round_trips(count: int) -> None:
                for _ in range(count):
                    if exchange(request) != reply:
                        raise RuntimeError("the echo server answered something else")

            round_trips(_WARMUP)
            cost = paired_cpu(served_by, lambda: round_trips(calls))
            if caller_thread:
                stream.close(wait_s=2)
            outgoing.put(None)
    finally:
        server.kill()
        server.wait()
    return {
        "client_ms": cost.here * 1000 / calls,
        "server_ms": cost.there * 1000 / calls,
        "total_ms": (cost.here + cost.there) * 1000 / calls,
        "wall_ms": cost.wall * 1000 / calls,
        "caller_thread": caller_thread,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale.grpc_floor", description=__doc__)
    parser.add_argument("--calls", type=int, default=5_000, help="timed round trips")
    parser.add_argument(
        "--public-api",
        action="store_true",
        help="the client uses grpcio's public streaming API (three threads) even where the SDK "
        "would run the stream on the caller's thread alone",
    )
    parser.add_argument("--serve", metavar="REPLY_HEX", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(bytes.fromhex(args.serve))
        return 0
    print(json.dumps(measure(args.calls, public_api=args.public_api)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
