"""The scoring server behind ``mlgrid models serve``: MLflow's protocol on a lean HTTP/1.1 stack.

Routes: ``POST /invocations`` (see :mod:`mlgrid.models.scoring`), ``GET /ping`` and
``GET /health`` (200 once the model is loaded), ``GET /version`` (mlgrid's version).

Why not a web framework: a prediction on one row takes a few hundred microseconds, so the
per-request cost of the HTTP layer decides the throughput. This server is one asyncio protocol
per connection (keep-alive, pipelining, ``Expect: 100-continue``, chunked bodies) that calls
the model inline on the event loop: one request at a time per worker, as a gunicorn sync
worker does, without a thread hop. ``workers`` processes share one listening socket (forked
after the model is loaded, so they share its memory). A prediction that runs longer than
``timeout`` seconds is interrupted (SIGALRM) and answered with 503; the worker keeps serving.

Errors have MLflow's shape, ``{"error_code": "BAD_REQUEST", "message": ...}``: 400 for input
that does not fit (malformed JSON, unknown columns, wrong types) and for a model that raises,
404 for an unknown path, 405 for a wrong method, 411/413 for a missing or too large body, 415
for an unsupported content type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlgrid
from mlgrid.exceptions import InvalidParameterValue

from .scoring import UnsupportedContentType, format_predictions, parse_request

__all__ = ["ScoringApp", "ServeOptions", "serve"]

#: Longest request line plus headers accepted.
MAX_HEADER_BYTES = 64 * 1024
#: Shown of a model's exception in an error message.
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class ServeOptions:
    """How ``mlgrid models serve`` listens (the flags of ``mlflow models serve``)."""

    host: str = "127.0.0.1"
    port: int = 5000
    #: Worker processes sharing the port.
    workers: int = 1
    #: Seconds a prediction may take before it is interrupted (answered with 503).
    timeout: float = 60.0
    #: Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = 64 * 1024 * 1024


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def error(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    body = json.dumps({"error_code": code, "message": message[:MAX_MESSAGE]}).encode()
    return Response(status, body)


class PredictionTimeout(Exception):
    """Raised into a prediction that ran out of time (from the SIGALRM handler)."""


class ScoringApp:
    """Routes a request to the model: what every worker runs, free of any socket."""

    def __init__(self, model: Any, timeout: float) -> None:
        self.model = model
        self.timeout = timeout
        self.signature = getattr(model, "signature", None)
        if self.signature is not None:
            # Import what checking inputs needs now, not inside the first (timed) request.
            from .enforcement import _modules

            _modules()
        self._alarm = timeout > 0 and _can_use_alarm()
        if self._alarm:
            signal.signal(signal.SIGALRM, _raise_timeout)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        route = path.split("?", 1)[0]
        if route == "/invocations":
            if method != "POST":
                return error(405, f"{route} takes POST, not {method}")
            return self.invocations(headers.get("content-type", ""), body)
        if route in ("/ping", "/health"):
            if method not in ("GET", "HEAD"):
                return error(405, f"{route} takes GET, not {method}")
            return Response(200, b"\n", "text/plain")
        if route == "/version":
            return Response(200, mlgrid.__version__.encode(), "text/plain")
        return error(404, f"no such endpoint: {route[:100]!r}", "ENDPOINT_NOT_FOUND")

    def invocations(self, content_type: str, body: bytes) -> Response:
        try:
            data, params = parse_request(body, content_type, self.signature)
        except UnsupportedContentType as exc:
            return error(415, exc.message)
        except InvalidParameterValue as exc:
            return error(400, exc.message)
        try:
            predictions = self._predict(data, params)
        except InvalidParameterValue as exc:  # the signature check
            return error(400, exc.message)
        except PredictionTimeout:
            return error(
                503,
                f"the prediction took longer than the {self.timeout:g} s timeout (-t/--timeout)",
                "TEMPORARILY_UNAVAILABLE",
            )
        except Exception as exc:
            return error(400, f"the model raised {type(exc).__name__}: {exc}")
        try:
            return Response(200, format_predictions(predictions))
        except (TypeError, ValueError) as exc:
            return error(500, f"the predictions cannot be written as JSON: {exc}", "INTERNAL_ERROR")

    def _predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        if not self._alarm:
            return self.model.predict(data, params=params)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            return self.model.predict(data, params=params)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _can_use_alarm() -> bool:
    import threading

    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _raise_timeout(signum: int, frame: Any) -> None:
    raise PredictionTimeout


class _HttpProtocol(asyncio.Protocol):
    """One connection: parse requests from the byte stream, answer each in order."""

    def __init__(self, app: ScoringApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            if not self._one_request():
                return

    def _send(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        assert self.transport is not None
        head = (
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        ).encode("latin-1")
        self.transport.write(head if head_only else head + response.body)
        if not keep_alive:
            self.transport.close()

    def _refuse(self, response: Response) -> bool:
        self._send(response, keep_alive=False)
        self.buffer.clear()
        return False

    def _one_request(self) -> bool:
        """Answers one complete request from the buffer; False when more bytes are needed."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                return self._refuse(error(431, "the request headers are too large"))
            return False
        try:
            head = bytes(self.buffer[:end]).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            method, target, version = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        except ValueError:
            return self._refuse(error(400, "malformed HTTP request"))
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _dechunk(self.buffer, start, self.max_body)
            if decoded is None:
                return self._maybe_continue(headers)
            if isinstance(decoded, Response):
                return self._refuse(decoded)
            body, consumed = decoded
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return self._refuse(error(400, "Content-Length is not a number"))
            if length < 0:
                return self._refuse(error(400, "Content-Length is negative"))
            if length > self.max_body:
                return self._refuse(_too_large(self.max_body))
            if len(self.buffer) - start < length:
                return self._maybe_continue(headers)
            body, consumed = bytes(self.buffer[start : start + length]), start + length
        del self.buffer[:consumed]
        self.continued = False
        response = self.app.handle(method, target, headers, body)
        self._send(response, keep_alive, head_only=method == "HEAD")
        return True

    def _maybe_continue(self, headers: dict[str, str]) -> bool:
        """curl and others wait for ``100 Continue`` before sending a large body."""
        if not self.continued and headers.get("expect", "").lower() == "100-continue":
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.continued = True
        return False


def _too_large(limit: int) -> Response:
    return error(413, f"the request body is larger than the limit of {limit} bytes")


def _dechunk(buffer: bytearray, start: int, limit: int) -> tuple[bytes, int] | Response | None:
    """(body, bytes consumed) of a complete chunked body, None if incomplete, or an error."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            return error(400, "malformed chunked body")
        if len(body) + size > limit:
            return _too_large(limit)
        chunk_start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 4
        if len(buffer) < chunk_start + size + 2:
            return None
        body += buffer[chunk_start : chunk_start + size]
        position = chunk_start + size + 2


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _run_worker(sock: socket.socket, app: ScoringApp, options: ServeOptions) -> None:
    loop = asyncio.new_event_loop()
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)

    async def main() -> None:
        server = await loop.create_server(
            lambda: _HttpProtocol(app, options.max_body_bytes), sock=sock
        )
        async with server:
            await stop

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def serve(
    model: Any,
    options: ServeOptions,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serves ``model`` (anything with ``predict(data, params=None)``) until SIGTERM/SIGINT."""
    sock = _listen(options.host, options.port)
    host, port = sock.getsockname()[:2]
    if announce is not None:
        announce(f"serving the model on http://{host}:{port} with {options.workers} worker(s)")
    app = ScoringApp(model, options.timeout)
    if options.workers <= 1:
        _run_worker(sock, app, options)
        return
    _supervise(sock, app, options)


def _supervise(sock: socket.socket, app: ScoringApp, options: ServeOptions) -> None:
    """Forks the workers, restarts one that dies, stops them all on SIGTERM/SIGINT."""
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                _run_worker(sock, app, options)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.add(pid)

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for _ in range(options.workers):
        spawn()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        if not stopping:
            print(f"worker {pid} exited; starting another", file=sys.stderr, flush=True)
            spawn()
    sock.close()
