"""Tunnels: a client's connection pinned to one backend, relayed as bytes.

Forwarding a call through the gateway's gRPC server costs a full gRPC receive and send in
Python, about as much CPU as the backend's own work on a small call. For the chatty services
(tracking and registry, routed by store rather than by a field of each request) a client can
instead ask for a tunnel: it sends ``CONNECT <anything> HTTP/1.1`` to this listener with the
header ``mlgrid-service: <full service name>``; the gateway picks the backend from the same
routing table its forwarder uses (that service's default store), connects to it, answers
``200`` and then copies bytes both ways. The client speaks gRPC over the tunnel directly to the
backend (``grpc.http_proxy`` in gRPC's channel arguments does all of this on the client side),
so each call costs the gateway two small socket copies instead of a parse and a re-send.

A tunnel is pinned to one routing key, named by the optional header ``mlgrid-route``: for
tracking and registry a store URI (as the ``mlgrid-store-uri`` metadata; absent: the default
store), for artifacts a URI or ``<scheme>:`` (the client opens one tunnel per scheme and sends
each call down the tunnel of its URI's scheme), for projects a backend name.

The gateway stays the one entry point and the only party that knows backend addresses: the
target a client names in ``CONNECT`` is ignored, and only routes in the table are reachable.

On a TLS gateway the tunnel's bytes are TLS ended here (``tunnel_tls``): gRPC sends the
``CONNECT`` in the clear and then runs TLS through the tunnel, which the gateway answers with its
own certificate (checking the client's under mutual TLS) before relaying to the backend.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mlgrid.exceptions import MlgridException
from mlgrid.protocol import TUNNEL_ROUTE_HEADER, TUNNEL_SERVICE_HEADER

from .methods import ForwardedService
from .replicas import ReplicaPicker
from .routing import DEFAULT, Route, RoutingTable
from .tunnel_tls import CHUNK, TlsEnd

log = logging.getLogger(__name__)

#: Longest routing value accepted (a store URI, an artifact URI prefix, a backend name).
MAX_ROUTE_CHARS = 2048
#: The request head (request line and headers) may not exceed this.
MAX_HEAD_BYTES = 8 * 1024
#: Seconds a client has to send its request head, and the gateway to reach the backend.
HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
#: Tunnels open at once; each holds two threads. Beyond it clients are told to use the gateway.
DEFAULT_MAX_TUNNELS = 512
_RELAY_CHUNK = 256 * 1024


class TunnelRefused(Exception):
    """A CONNECT that gets no tunnel: the HTTP status and the reason the client is shown."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ConnectRequest:
    target: str
    headers: dict[str, str]


def parse_head(head: bytes) -> ConnectRequest:
    """The CONNECT request in ``head`` (without its blank line); TunnelRefused(400) otherwise."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise TunnelRefused(400, "request head is not ASCII") from None
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        raise TunnelRefused(400, "only 'CONNECT <target> HTTP/1.1' is served on this port")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise TunnelRefused(400, f"malformed header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return ConnectRequest(target=parts[1], headers=headers)


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """Reads up to the blank line ending the request head; returns (head, bytes after it)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            raise TunnelRefused(431, f"request head longer than {MAX_HEAD_BYTES} bytes")
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client closed before finishing its request")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES:
        raise TunnelRefused(431, f"request head longer than {MAX_HEAD_BYTES} bytes")
    return head, rest


def _connect(replica: tuple[str, int] | str) -> socket.socket:
    """A connected socket to one replica: ``(host, port)`` or a ``unix:path`` string."""
    if isinstance(replica, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(replica[len("unix:") :].removeprefix("//"))
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(replica, CONNECT_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


def _relay_chunks(
    recv: Callable[[], bytes], send: Callable[[bytes], None], end: Callable[[], None]
) -> None:
    """``_relay`` for a TLS end: copies what ``recv`` gives to ``send`` until it gives b""."""
    try:
        while True:
            data = recv()
            if not data:
                break
            send(data)
    except OSError:  # ssl.SSLError included: either side went away or broke the stream
        pass
    finally:
        with contextlib.suppress(OSError):
            end()


def _relay(source: socket.socket, sink: socket.socket) -> None:
    """Copies ``source`` to ``sink`` until ``source`` ends; then ends ``sink``'s writing side."""
    buffer = bytearray(_RELAY_CHUNK)
    view = memoryview(buffer)
    try:
        while True:
            size = source.recv_into(buffer)
            if not size:
                break
            sink.sendall(view[:size])
    except OSError:
        pass  # either side went away; the other side learns it from the shutdown below
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class TunnelListener:
    """Accepts CONNECT requests on its own port and relays each tunnel in two threads."""

    def __init__(
        self,
        table: RoutingTable,
        services: dict[str, ForwardedService],
        retry_discovery: Callable[[], bool] = lambda: False,
        max_tunnels: int = DEFAULT_MAX_TUNNELS,
        tls: ssl.SSLContext | None = None,
        check_caller: Callable[[dict[str, str]], object] | None = None,
    ) -> None:
        #: With auth on: verifies the CONNECT's credentials (raises Unauthenticated); the
        #: services check each tunnelled call's own credentials too (edge_auth.py).
        self._check_caller = check_caller
        self._table = table
        #: Server context of a TLS gateway (ALPN h2); None: tunnels are relayed as they come.
        self._tls = tls
        self._services = {s.full_name: s for s in services.values()}
        self._retry_discovery = retry_discovery
        self._slots = threading.BoundedSemaphore(max_tunnels)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._replicas = ReplicaPicker()
        self.port = 0
        #: Tunnels opened so far, by service key ("tracking", ...): what went through the relay.
        self.opened: collections.Counter[str] = collections.Counter()

    def start(self, host: str, port: int) -> int:
        """Binds and starts accepting; returns the bound port."""
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host.strip("[]"), port))
        except OSError as exc:
            listener.close()
            raise OSError(f"could not bind the gateway's tunnel port {host}:{port}: {exc}") from exc
        listener.listen(128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="tunnel-accept", daemon=True).start()
        log.info("gateway tunnels on %s:%d", host, self.port)
        return self.port

    def stop(self) -> None:
        """Stops accepting and closes every open tunnel (clients reconnect through the gateway)."""
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
            self._sockets.clear()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    # -- per connection ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            threading.Thread(target=self._serve, args=(conn,), name="tunnel", daemon=True).start()

    def _track(self, *socks: socket.socket) -> bool:
        with self._lock:
            if self._closed.is_set():
                return False
            self._sockets.update(socks)
            return True

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(socks)
        for sock in socks:
            sock.close()

    def _serve(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(conn, TunnelRefused(503, "too many tunnels; use the gateway port"))
            return
        try:
            self._tunnel(conn)
        finally:
            self._slots.release()

    def _tunnel(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(HEAD_TIMEOUT_S)
        try:
            head, early = _read_head(conn)
            request = parse_head(head)
            self._authenticate(request)
            route = self._route(request)
            backend = self._open(route)
        except TunnelRefused as refused:
            self._refuse(conn, refused)
            return
        except (OSError, ConnectionError):
            conn.close()
            return
        conn.settimeout(None)
        if not self._track(conn, backend):
            conn.close()
            backend.close()
            return
        self.opened[route.service] += 1
        try:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if self._tls is not None:
                self._relay_tls(conn, backend, early)
                return
            if early:
                backend.sendall(early)
            back = threading.Thread(target=_relay, args=(backend, conn), daemon=True)
            back.start()
            _relay(conn, backend)
            back.join()
        except OSError:
            pass
        finally:
            self._untrack(conn, backend)

    def _relay_tls(self, conn: socket.socket, backend: socket.socket, early: bytes) -> None:
        """Ends the client's TLS here, then relays plaintext to and from the backend."""
        assert self._tls is not None
        end = TlsEnd(conn, self._tls, early)
        conn.settimeout(HEAD_TIMEOUT_S)
        try:
            end.handshake()
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            log.info("tunnel TLS handshake failed: %s", getattr(exc, "reason", None) or exc)
            return
        conn.settimeout(None)
        back = threading.Thread(
            target=_relay_chunks,
            args=(lambda: backend.recv(CHUNK), end.sendall, end.close_write),
            daemon=True,
        )
        back.start()
        _relay_chunks(end.recv, backend.sendall, lambda: backend.shutdown(socket.SHUT_WR))
        back.join()

    def _authenticate(self, request: ConnectRequest) -> None:
        if self._check_caller is None:
            return
        try:
            self._check_caller(request.headers)
        except MlgridException as exc:
            raise TunnelRefused(401, exc.message) from None

    def _route(self, request: ConnectRequest) -> Route:
        name = request.headers.get(TUNNEL_SERVICE_HEADER, "")
        service = self._services.get(name)
        if service is None:
            known = ", ".join(sorted(self._services)) or "none"
            raise TunnelRefused(404, f"no tunnel for service {name!r}; tunnelled services: {known}")
        value = request.headers.get(TUNNEL_ROUTE_HEADER) or None
        if value is not None and len(value) > MAX_ROUTE_CHARS:
            raise TunnelRefused(
                400, f"{TUNNEL_ROUTE_HEADER} is longer than {MAX_ROUTE_CHARS} characters"
            )
        key = self._table.routing_key(service, value, value)
        route = self._table.lookup(service.key, key)
        if route is None and self._retry_discovery():
            route = self._table.lookup(service.key, key)
        if route is None:
            what = "the default store" if key == DEFAULT else repr(key)
            raise TunnelRefused(503, f"no backend serves {service.key} for {what}")
        return route

    def _open(self, route: Route) -> socket.socket:
        """A connection to one of the route's replicas: the next in turn that accepts."""
        try:
            replicas = self._replicas.order(route.address)
        except (OSError, ValueError) as exc:
            raise TunnelRefused(502, f"{route.describe()} cannot be resolved: {exc}") from None
        failure: OSError | None = None
        for replica in replicas:
            try:
                return _connect(replica)
            except OSError as exc:
                failure = exc
        raise TunnelRefused(502, f"{route.describe()} is unavailable: {failure}") from None

    @staticmethod
    def _refuse(conn: socket.socket, refused: TunnelRefused) -> None:
        reason = refused.reason.replace("\r", " ").replace("\n", " ")
        body = (reason + "\n").encode("utf-8", "replace")
        try:
            conn.sendall(
                f"HTTP/1.1 {refused.status} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode(
                    "utf-8", "replace"
                )
                + body
            )
        except OSError:
            pass
        finally:
            conn.close()
