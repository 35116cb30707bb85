"""The server side of ``CallPipelineService`` (protos/mlgrid/api/common/v1/common.proto).

A client logging in a loop makes one small call after another; as unary calls each costs the
server gRPC's call set-up, a hand-off from the poller thread to a worker and a status of its
own, about twice the CPU of the work itself. On a pipeline each call is one message each way
on a stream that stays open. Every pipelined call is run through the in-process channel
(inprocess.py) built on this server's own handlers and interceptors, so it meets exactly what
a call of its own meets: the same error mapping and call scope, the same auth checks with the
stream's metadata, the same servicer. Only what the contracts declare idempotent (or free of
side effects) may be pipelined: a client that loses a stream before a call's reply makes that
call again on its own.

Each open pipeline holds one of the server's worker threads, so they are bounded twice:
at most ``MAX_PIPELINES`` at once (more are refused with RESOURCE_EXHAUSTED, and those clients
make their calls on their own), and each must be opened with a deadline of at most
``MAX_PIPELINE_SECONDS`` (gRPC ends it then, freeing the thread even if its client went idle).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool

from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.limits import MAX_PIPELINE_SECONDS, MAX_PIPELINES
from mlgrid.protocol import STATUS_DETAILS_KEY
from mlgrid.retries import is_idempotent

from .inprocess import HandlerRecorder, InProcessChannel, InProcessRpcError

if TYPE_CHECKING:
    from .server import ServedService


def pipelined_methods(service_names: Sequence[str]) -> list[str]:
    """``/Service/Method`` of every unary method of these services that its contract declares
    idempotent or free of side effects (mlgrid.retries, which retries the same methods): what a
    pipeline may carry."""
    pool = descriptor_pool.Default()
    paths = []
    for name in service_names:
        try:
            service = pool.FindServiceByName(name)
        except KeyError:  # a plugin's service whose contract this process has not loaded
            continue
        for method in service.methods:
            streaming = getattr(method, "client_streaming", False) or getattr(
                method, "server_streaming", False
            )
            if is_idempotent(method) and not streaming:
                paths.append(f"/{name}/{method.name}")
    return paths


def _refused(code: grpc.StatusCode, message: str) -> common_pb2.CallPipelineServiceRunResponse:
    return common_pb2.CallPipelineServiceRunResponse(code=code.value[0], message=message)


class PipelineServicer(common_pb2_grpc.CallPipelineServiceServicer):
    """Runs the calls of each pipeline, in order, through ``interceptors`` and the handlers of
    ``services`` (the server's own)."""

    def __init__(
        self,
        services: Sequence[ServedService],
        interceptors: Sequence[grpc.ServerInterceptor],
        *,
        max_pipelines: int = MAX_PIPELINES,
    ) -> None:
        recorder = HandlerRecorder()
        for service in services:
            service.register(recorder)  # type: ignore[arg-type]
        channel = InProcessChannel(recorder.handlers, interceptors)
        self._calls = {
            path: channel.unary_unary(path)
            for path in pipelined_methods([s.name for s in services])
        }
        self._max = max_pipelines
        self._lock = threading.Lock()
        #: Open pipelines: their contexts, and whether each is running a call now.
        self._open: dict[Any, bool] = {}
        self._closing = False

    def close(self) -> None:
        """Ends every pipeline at once when its server stops, so the stop does not wait out
        its grace period for clients that keep their streams open. An idle pipeline is
        cancelled; one running a call ends after sending that call's reply. (Its client then
        makes further calls on their own, through another replica if there is one.)"""
        with self._lock:
            self._closing = True
            idle = [context for context, busy in self._open.items() if not busy]
        for context in idle:
            context.cancel()

    def Run(self, request_iterator, context):
        remaining = context.time_remaining()
        if remaining is None or remaining > MAX_PIPELINE_SECONDS + 1:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a call pipeline must be opened with a deadline of at most "
                f"{MAX_PIPELINE_SECONDS:g} s (it holds a server thread while open)",
            )
        with self._lock:
            admitted = not self._closing and len(self._open) < self._max
            if admitted:
                self._open[context] = False
        if not admitted:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this server carries at most {self._max} call pipelines at once; make the "
                "calls on their own",
            )
        try:
            metadata = tuple(context.invocation_metadata() or ())
            for call in request_iterator:
                with self._lock:
                    self._open[context] = True
                reply = self._answer(call, metadata)
                with self._lock:
                    self._open[context] = False
                    closing = self._closing
                yield reply
                if closing:
                    return
        except grpc.RpcError:
            # The client went (closed its channel, or the stream's deadline passed), or the
            # server is stopping: an ordinary end, every call so far answered.
            return
        finally:
            with self._lock:
                self._open.pop(context, None)

    def _answer(
        self, call: common_pb2.CallPipelineServiceRunRequest, metadata: tuple[tuple[str, Any], ...]
    ) -> common_pb2.CallPipelineServiceRunResponse:
        method = self._calls.get(call.method)
        if method is None:
            return _refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"method {call.method[:200]!r} cannot be pipelined: only idempotent unary "
                "methods of the services this server serves can",
            )
        try:
            response = method(call.request, metadata=metadata)
        except InProcessRpcError as err:
            details = b""
            for key, value in err.trailing_metadata() or ():
                if key == STATUS_DETAILS_KEY:
                    details = value
            return common_pb2.CallPipelineServiceRunResponse(
                code=err.code().value[0], message=err.details(), status_details=details
            )
        return common_pb2.CallPipelineServiceRunResponse(response=response)
