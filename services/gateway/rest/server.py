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
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from mlgrid.exceptions import MlgridException

from .endpoints import Router
from .errors import RestError, from_rpc
from .exchange import Exchange

log = logging.getLogger(__name__)

#: Seconds a keep-alive connection may sit idle before the server closes it.
IDLE_TIMEOUT_S = 120.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlgrid"
    timeout = IDLE_TIMEOUT_S
    router: Router  # set on the per-server subclass

    def setup(self) -> None:
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


class RestServer:
    """MLflow's REST API on ``host:port`` (0: any free port), served by daemon threads."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("RestHandler", (_Handler,), {"router": router})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.host = host

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rest-accept", daemon=True
        )
        self._thread.start()
        log.info("MLflow REST API serving on %s", self.url)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
