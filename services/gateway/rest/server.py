"""The REST port: a threaded HTTP/1.1 server with keep-alive in front of :class:`.Router`.

Why the standard library's threaded server: the work per request is a few dicts, one JSON
encode and one blocking gRPC call to a backend (whose stubs are synchronous), and streamed
artifact bodies map directly onto blocking reads and writes. Measured on this machine
(docs/mlflow-rest.md) it answers a small JSON request in well under a millisecond of its own
time, far inside the budget set by MLflow's server, and needs no dependency.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc

from mlgrid.exceptions import MlgridException

from .caller import calls_on_behalf_of
from .endpoints import Router
from .errors import RestError, from_rpc
from .exchange import Exchange

log = logging.getLogger(__name__)

#: Seconds a keep-alive connection may sit idle before the server closes it.
IDLE_TIMEOUT_S = 120.0
#: Seconds a client has to finish the TLS handshake.
HANDSHAKE_TIMEOUT_S = 10.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlgrid"
    timeout = IDLE_TIMEOUT_S
    router: Router  # set on the per-server subclass

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            # In this connection's own thread, so a slow client holds up no other.
            self.request.settimeout(HANDSHAKE_TIMEOUT_S)
            self.request.do_handshake()
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        try:
            ex = Exchange(self, method, path, query)
        except RestError as err:
            self.close_connection = True
            self._fail_early(err)
            return
        try:
            with calls_on_behalf_of(self.headers.get("Authorization")):
                self.router.serve(ex)
        except RestError as err:
            self._fail(ex, err)
        except MlgridException as exc:
            self._fail(ex, RestError(exc.error_code, exc.message))
        except grpc.RpcError as err:
            self._fail(ex, from_rpc(err))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("REST %s %s failed", method, path[:200])
            self._fail(ex, RestError("INTERNAL_ERROR", "unexpected server error; see its log"))
        ex.finish_body()

    def _fail(self, ex: Exchange, err: RestError) -> None:
        if ex.responded:  # part of a streamed answer is out: the connection cannot be reused
            self.close_connection = True
            return
        if ex.body_pending:
            ex.finish_body()
        ex.send(err.status, err.body())

    def _fail_early(self, err: RestError) -> None:
        body = err.body()
        self.wfile.write(
            f"HTTP/1.1 {err.status} Bad Request\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    def log_message(self, format: str, *args: object) -> None:
        log.debug("REST %s", format % args)


class _HttpServer(ThreadingHTTPServer):
    """With ``tls``, each accepted connection is wrapped for TLS; its handshake runs in the
    connection's thread (``_Handler.setup``), not in the accepting one."""

    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that fails the TLS handshake (no certificate under mutual TLS, plaintext
        on an HTTPS port) is one log line, not a traceback."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            log.info("REST connection from %s refused: %s", client_address[0], error)
            return
        super().handle_error(request, client_address)


class RestServer:
    """MLflow's REST API on ``host:port`` (0: any free port), served by daemon threads; HTTPS
    when given a TLS server context."""

    def __init__(
        self,
        router: Router,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        handler = type("RestHandler", (_Handler,), {"router": router})
        self._server = _HttpServer((host, port), handler)
        self._server.tls = tls
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.host = host
        self.scheme = "https" if tls is not None else "http"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rest-accept", daemon=True
        )
        self._thread.start()
        log.info("MLflow REST API serving on %s", self.url)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
