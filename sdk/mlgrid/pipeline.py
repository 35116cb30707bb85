"""Client side of ``CallPipelineService`` (services/common/pipeline.py): small idempotent calls made
one after another (``log_metric`` in a training loop) ride one long-lived stream on a tunnel,
one message each way, instead of a gRPC call each.

A pipeline never changes what a call does or what its caller sees; it only carries it. When it
cannot carry a call it says so (``call`` returns :data:`NOT_CARRIED`) and the caller makes the
call on its own, exactly as without pipelines:

- another thread is using the pipeline (one call at a time: replies come back in order), or
  the caller is a process forked from the one that opened it;
- its request is larger than ``MAX_PIPELINED_BYTES`` (a big ``log_batch``);
- the server refused the stream (too many pipelines, or a server without ``CallPipelineService``),
  which is remembered for a while;
- the stream broke before the call's reply. The call may or may not have run; only methods the
  contract declares idempotent are pipelined (the server checks it too), so running it again on
  its own is safe.

A stream is opened with a deadline of ``MAX_PIPELINE_SECONDS`` (the server's bound, so an idle
client holds no server thread for longer) and replaced shortly before it, or when the call
metadata changes (a refreshed token, another workspace).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Final

import grpc

from mlgrid import _fork
from mlgrid._grpc_stream import CallerThreadStream
from mlgrid._grpc_stream import supported as caller_thread_streams_supported
from mlgrid._rpc_errors import EndedCall, status_code
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.limits import MAX_PIPELINE_SECONDS
from mlgrid.protocol import STATUS_DETAILS_KEY

log = logging.getLogger(__name__)

#: What :meth:`Pipeline.call` returns when it did not carry the call.
NOT_CARRIED: Final = object()
#: A stream is replaced once this close to its deadline, so a call never rides one that ends.
_RENEW_MARGIN_S = 5.0
#: Larger requests go on their own: beside their size a call's fixed cost is small, and on a
#: pipeline their bytes would be copied twice more (a log_batch of 1,000 points, ~20 kB, measured
#: 10-20 % slower pipelined).
MAX_PIPELINED_BYTES = 8 * 1024
#: After the server refused a stream, calls go on their own for this long before trying again.
_REFUSED_PAUSE_S = 30.0
_END = object()  # ends a stream's requests
_RUN = "/mlgrid.api.common.v1.CallPipelineService/Run"
#: The most a pipeline's stream waits for the server to end it when it is replaced or closed,
#: before it cancels it (the server answers at once unless it is stuck).
_CLOSE_WAIT_S = 2.0


class PipelinedCallError(EndedCall):
    """A pipelined call that failed: what the same call on its own would have raised (its code,
    message and the status details the SDK reads the error's type from)."""

    @classmethod
    def of(cls, reply: common_pb2.CallPipelineServiceRunResponse) -> PipelinedCallError:
        trailing = ((STATUS_DETAILS_KEY, reply.status_details),) if reply.status_details else ()
        return cls(status_code(reply.code), reply.message, trailing)


class _Stream:
    """One open ``CallPipelineService.Run`` on grpcio's public API: an outgoing queue that a
    request-reader thread of gRPC's sends from, and the replies (the fallback where
    :mod:`mlgrid._grpc_stream` is not supported)."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = list(metadata)
        self.renew_at = time.monotonic() + MAX_PIPELINE_SECONDS - _RENEW_MARGIN_S
        self.outgoing: queue.SimpleQueue[Any] = queue.SimpleQueue()
        run = common_pb2_grpc.CallPipelineServiceStub(channel).Run
        with _fork.threads_started() as started:
            #: The replies, read one per call sent (a grpc call iterator: also cancellable).
            self.replies: Any = run(
                self._requests(), metadata=tuple(self.metadata), timeout=MAX_PIPELINE_SECONDS
            )
        #: What gRPC started for the stream (its request reader; its channel's event loop when
        #: no other call was running): a fork waits for them once the stream has ended.
        self.threads = started
        self.answered = 0

    def _requests(self) -> Iterator[common_pb2.CallPipelineServiceRunRequest]:
        while True:
            item = self.outgoing.get()
            if item is _END:
                return
            yield item

    def exchange(
        self, call: common_pb2.CallPipelineServiceRunRequest
    ) -> common_pb2.CallPipelineServiceRunResponse:
        """Sends ``call`` and returns its reply; raises grpc.RpcError or StopIteration when the
        stream ended first."""
        self.outgoing.put(call)
        return next(self.replies)

    def abandon(self) -> None:
        """Drops the stream at once (its caller was interrupted while it waited)."""
        self.replies.cancel()

    def close(self) -> None:
        self.outgoing.put(_END)  # the server's loop ends; the stream finishes OK

    def finish(self, until: float) -> set[threading.Thread]:
        """Closes the stream and waits (until monotonic ``until``) for gRPC to finish it,
        cancelling it if the server has not ended it by then; returns its threads."""
        ended = threading.Event()
        self.replies.add_done_callback(lambda _call: ended.set())
        self.close()
        if not ended.wait(max(0.0, until - time.monotonic())):
            self.replies.cancel()
        return self.threads


class _CallerThreadStream:
    """One open ``CallPipelineService.Run`` run by the calling thread alone
    (:mod:`mlgrid._grpc_stream`): no thread of its own, less than half the public API's
    client CPU per call."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = list(metadata)
        self.renew_at = time.monotonic() + MAX_PIPELINE_SECONDS - _RENEW_MARGIN_S
        self.answered = 0
        self._stream = CallerThreadStream(channel, _RUN, metadata, MAX_PIPELINE_SECONDS)

    def exchange(
        self, call: common_pb2.CallPipelineServiceRunRequest
    ) -> common_pb2.CallPipelineServiceRunResponse:
        reply = self._stream.exchange(call.SerializeToString())
        return common_pb2.CallPipelineServiceRunResponse.FromString(reply)

    def abandon(self) -> None:
        # Interrupted inside gRPC's wait, gRPC has freed the call already; anywhere else the
        # cancel ends it. Its queue is not read again either way.
        with contextlib.suppress(Exception):
            self._stream.cancel()

    def close(self) -> None:
        self._stream.close(_CLOSE_WAIT_S)

    def finish(self, until: float) -> set[threading.Thread]:
        watchdog = self._stream.close(max(0.0, until - time.monotonic()))
        return {watchdog} if watchdog is not None else set()


def _open_stream(
    channel: grpc.Channel, metadata: Sequence[tuple[str, str]]
) -> _Stream | _CallerThreadStream:
    if caller_thread_streams_supported(channel):
        return _CallerThreadStream(channel, metadata)
    return _Stream(channel, metadata)


class Pipeline:
    """The pipeline of one tunnelled channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        #: The process that made it: a forked child has none of its stream's threads, so it
        #: makes its calls on their own instead of waiting on a stream nobody serves.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._stream: _Stream | _CallerThreadStream | None = None
        self._paused_until = 0.0
        _PIPELINES.add(self)

    def call(
        self, method: str, request: Any, response_class: Any, metadata: Sequence[tuple[str, str]]
    ) -> Any:
        """The response of ``method`` (``/Service/Method``, idempotent) to ``request``; raises
        what the call on its own would raise; :data:`NOT_CARRIED` when not carried."""
        if request.ByteSize() > MAX_PIPELINED_BYTES or os.getpid() != self._pid:
            return NOT_CARRIED
        if not self._lock.acquire(blocking=False):
            return NOT_CARRIED
        try:
            stream = self._ready(metadata)
            if stream is None:
                return NOT_CARRIED
            call = common_pb2.CallPipelineServiceRunRequest(
                method=method, request=request.SerializeToString()
            )
            try:
                reply = stream.exchange(call)
            except (grpc.RpcError, StopIteration) as err:
                self._lost(stream, err)
                return NOT_CARRIED
            except BaseException:
                # Interrupted while waiting (Ctrl-C in a notebook): this call's reply would
                # come as the next call's. The stream goes; the call may or may not have run,
                # as for any interrupted call.
                self._stream = None
                stream.abandon()
                raise
            stream.answered += 1
        finally:
            self._lock.release()
        if reply.code:
            raise PipelinedCallError.of(reply)
        return response_class.FromString(reply.response)

    def _ready(self, metadata: Sequence[tuple[str, str]]) -> _Stream | _CallerThreadStream | None:
        """The stream to send on (lock held): the open one, or a new one; None while paused."""
        now = time.monotonic()
        stream = self._stream
        if stream is not None and (now >= stream.renew_at or list(metadata) != stream.metadata):
            stream.close()
            stream = self._stream = None
        if stream is None:
            if now < self._paused_until:
                return None
            stream = self._stream = _open_stream(self.channel, metadata)
        return stream

    def _lost(self, stream: _Stream | _CallerThreadStream, err: BaseException) -> None:
        """The stream ended before a reply (lock held): drop it; a refusal pauses pipelining."""
        self._stream = None
        stream.close()
        code = err.code() if isinstance(err, grpc.Call) else None
        if stream.answered == 0 and code in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.UNIMPLEMENTED,
            grpc.StatusCode.INVALID_ARGUMENT,
        ):
            self._paused_until = time.monotonic() + _REFUSED_PAUSE_S
            log.debug("call pipeline refused (%s); calls go on their own for a while", code)

    def close(self) -> None:
        if os.getpid() != self._pid:
            return  # a forked child: the stream is its parent's
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    def end_before_fork(self, until: float) -> set[threading.Thread]:
        """Ends the open stream before this process forks (see mlgrid._fork; the next call
        opens another, ~1 ms); returns the threads to wait for. A call on another thread (the
        non-blocking logger's) is waited for until monotonic ``until``; a stream still busy then
        stays: ending it would fail that call."""
        if os.getpid() != self._pid:
            return set()
        if not self._lock.acquire(timeout=max(0.0, until - time.monotonic())):
            return set()
        try:
            stream, self._stream = self._stream, None
            return stream.finish(until) if stream is not None else set()
        finally:
            self._lock.release()


#: This process's pipelines, whose streams end before it forks.
_PIPELINES: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _end_streams(until: float) -> set[threading.Thread]:
    threads: set[threading.Thread] = set()
    for pipeline in list(_PIPELINES):
        threads |= pipeline.end_before_fork(until)
    return threads


_fork.end_before_fork(_end_streams)
