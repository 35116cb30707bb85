"""Runs the artifacts service alone in this process, for tests and measurements that need it in
a process of its own (to kill a client, or to watch the service's memory).

    python tests/artifacts/serve_artifacts.py <allowed-root-dir>

Prints ``<port> <pid>`` on one line once serving; stops when stdin closes or on SIGTERM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlgrid_services.artifacts.app import create
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    app = create(ServiceConfig(default_artifact_root=root.as_uri()))
    running = start_server(app.services)
    print(running.port, os.getpid(), flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or exits)
    running.stop(grace=1.0)


if __name__ == "__main__":
    main()
