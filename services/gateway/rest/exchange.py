"""One HTTP request and its response on the REST port: reading the body (bounded for JSON,
streamed for artifacts) and writing answers (whole, or streamed with a known length).

Each answer's head and a small body leave in one ``send``: with TCP_NODELAY on the socket that
is one segment, so small requests never wait on a delayed ACK (what costs MLflow's own server
~40 ms per call on Linux without TCP_NODELAY).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from .errors import RestError

#: Largest JSON request body accepted (MLflow's biggest, a full log-batch, is far smaller).
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024
#: Bodies of unanswered requests up to this size are read and dropped to keep the connection.
_DRAIN_LIMIT = 1024 * 1024
_JSON = "application/json"


class Exchange:
    """The request being served on ``handler``'s connection and the state of its answer."""

    def __init__(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: str):
        self.handler = handler
        self.method = method
        self.path = path
        self.query = query
        self.responded = False
        headers = handler.headers
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        try:
            self.content_length: int | None = int(length) if length is not None else None
        except ValueError:
            raise RestError(
                "BAD_REQUEST", f"Content-Length {str(length)[:40]!r} is not a number"
            ) from None
        if self.content_length is not None and self.content_length < 0:
            raise RestError("BAD_REQUEST", "Content-Length must not be negative")
        self._remaining = 0 if self.chunked else (self.content_length or 0)
        self._chunked_done = not self.chunked

    # -- request body ----------------------------------------------------------------------------

    @property
    def body_pending(self) -> bool:
        return self._remaining > 0 or not self._chunked_done

    def read_json(self) -> Any:
        """The JSON body (``{}`` when empty); bounded, and refused clearly when malformed."""
        if self.content_length is not None and self.content_length > MAX_JSON_BODY_BYTES:
            raise RestError(
                "INVALID_PARAMETER_VALUE",
                f"request body of {self.content_length} bytes is larger than the "
                f"{MAX_JSON_BODY_BYTES} bytes allowed for JSON requests",
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        data = b"".join(self.body_chunks(256 * 1024, limit=MAX_JSON_BODY_BYTES))
        if not data.strip():
            return {}
        try:
            return json.loads(data)
        except UnicodeDecodeError:
            raise RestError(
                "INVALID_PARAMETER_VALUE", "request body is not UTF-8 encoded JSON"
            ) from None
        except json.JSONDecodeError as exc:
            raise RestError(
                "INVALID_PARAMETER_VALUE",
                f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                f"{exc.colno}",
            ) from None

    def body_chunks(self, size: int, limit: int | None = None) -> Iterator[bytes]:
        """The request body in chunks of at most ``size`` bytes; raises if it ends early."""
        rfile = self.handler.rfile
        total = 0
        if not self.chunked:
            while self._remaining > 0:
                chunk = rfile.read(min(size, self._remaining))
                if not chunk:
                    self.handler.close_connection = True
                    raise ConnectionError("the client closed the connection mid-body")
                self._remaining -= len(chunk)
                yield chunk
            return
        while not self._chunked_done:
            line = rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.handler.close_connection = True
                raise RestError("BAD_REQUEST", "malformed chunked request body") from None
            if chunk_size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._chunked_done = True
                return
            total += chunk_size
            if limit is not None and total > limit:
                self.handler.close_connection = True
                raise RestError(
                    "INVALID_PARAMETER_VALUE",
                    f"request body is larger than the {limit} bytes allowed",
                    status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                )
            left = chunk_size
            while left > 0:
                data = rfile.read(min(size, left))
                if not data:
                    self.handler.close_connection = True
                    raise ConnectionError("the client closed the connection mid-body")
                left -= len(data)
                yield data
            rfile.readline(8)  # the CRLF after each chunk

    def finish_body(self) -> None:
        """Drops what is left of a small unread body; a large one ends the connection."""
        if not self.body_pending:
            return
        if self.chunked or self._remaining > _DRAIN_LIMIT:
            self.handler.close_connection = True
            return
        try:
            for _ in self.body_chunks(64 * 1024):
                pass
        except (ConnectionError, RestError):
            self.handler.close_connection = True

    # -- answers ---------------------------------------------------------------------------------

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if self.handler.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, status: int, body: bytes, content_type: str = _JSON, **extra: str) -> None:
        """A whole answer in one write."""
        self.responded = True
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **extra}
        head = self._head(status, headers)
        self.handler.wfile.write(head + body if self.method != "HEAD" else head)

    def send_json(self, obj: Any, status: int = 200) -> None:
        self.send(status, json.dumps(obj, separators=(",", ":")).encode())

    def start(self, status: int, headers: dict[str, str]) -> None:
        """Starts a streamed answer whose Content-Length is in ``headers``."""
        self.responded = True
        self.handler.wfile.write(self._head(status, headers))

    def write(self, data: bytes) -> None:
        if data:
            self.handler.wfile.write(data)
