"""TLS on a tunnel, ended at the gateway.

gRPC's HTTP CONNECT support sends the ``CONNECT`` request in the clear and then runs TLS
through the tunnel, end to end with whatever answers at the far side. On a TLS gateway that far
side is the gateway itself: after its ``200`` it takes the server side of the handshake (its
certificate; with mutual TLS the client's certificate is checked here, as on the gRPC port) and
relays the decrypted HTTP/2 bytes to the backend, as a plaintext tunnel would.

One ``ssl.SSLObject`` over memory buffers serves both directions. OpenSSL does not allow one
connection to be used by two threads at once, so every use of it, and each send of the
records it produced (whose order on the wire must be the order they were made in), holds one
lock; reading from the socket does not.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

#: Bytes asked of the socket or of the TLS layer at a time.
CHUNK = 256 * 1024


class TlsEnd:
    """The client's side of one tunnel once its TLS is ended here: ``recv`` gives plaintext,
    ``sendall`` encrypts."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, early: bytes = b"") -> None:
        self._sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._lock = threading.Lock()
        if early:
            self._incoming.write(early)

    def _flush(self) -> None:
        """Sends the records the TLS layer has made (caller holds the lock)."""
        pending = self._outgoing.read()
        if pending:
            self._sock.sendall(pending)

    def handshake(self) -> None:
        """Runs the server side of the handshake; ssl.SSLError when it fails (an alert is sent
        to the client first), ConnectionError when the client leaves."""
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                data = self._sock.recv(CHUNK)
                if not data:
                    raise ConnectionError("the client left during the TLS handshake") from None
                self._incoming.write(data)
                continue
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._flush()
                raise
            self._flush()
            return

    def recv(self) -> bytes:
        """The next plaintext bytes from the client; b"" once it has closed."""
        while True:
            with self._lock:
                try:
                    data: bytes | None = self._tls.read(CHUNK)
                except ssl.SSLWantReadError:
                    data = None
                except ssl.SSLZeroReturnError:
                    data = b""
                self._flush()  # reading can make records too (key updates, session tickets)
            if data is not None:
                return data
            raw = self._sock.recv(CHUNK)
            if not raw:
                return b""
            with self._lock:
                self._incoming.write(raw)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            view = memoryview(data)
            while view:
                written = self._tls.write(view)
                view = view[written:]
            self._flush()

    def close_write(self) -> None:
        """Tells the client the stream ends (TLS close_notify, then the TCP half-close)."""
        with self._lock:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            with contextlib.suppress(OSError):
                self._flush()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
