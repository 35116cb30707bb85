"""Forces TCP_NODELAY on the sockets an asyncio server accepts (put this folder on PYTHONPATH).

Why: asyncio sets TCP_NODELAY on a new TCP transport only when ``sock.proto == IPPROTO_TCP``.
uvicorn with ``--workers N`` binds its listening socket as ``socket.socket(family=...)``, whose
proto is 0, so the sockets it accepts keep Nagle's algorithm on; a response written in two parts
(headers, then body) then waits for the client's delayed ACK, ~40 ms per small request (uvicorn
issue #3149). The benchmark measures ``mlflow server`` both as shipped and with this fix, which
relaxes the check to "any TCP stream socket".

When MLGRID_BENCH_NODELAY_LOG names a file, each process that applies the fix appends a line to it
the first time it sets the option, so the benchmark can show that the fix took effect.
"""

import os
import socket


def _install() -> None:
    import asyncio.base_events as base_events

    log_path = os.environ.get("MLGRID_BENCH_NODELAY_LOG")
    announced = False

    def set_nodelay(sock: socket.socket) -> None:
        nonlocal announced
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if log_path and not announced:
                announced = True
                with open(log_path, "a") as log:
                    log.write(f"pid {os.getpid()} TCP_NODELAY=1 on accepted socket\n")

    base_events._set_nodelay = set_nodelay  # type: ignore[attr-defined]


_install()
