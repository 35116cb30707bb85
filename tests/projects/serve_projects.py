"""Runs a projects service in a process of its own (for the restart test).

    python serve_projects.py '<ServiceConfig as JSON>' STATE_DIR

Prints the port it serves on, then serves until killed.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import ServedService, start_server
from mlgrid_services.projects.app import SERVICE_NAME, create_runner
from mlgrid_services.projects.servicer import ProjectsServicer


def main() -> None:
    config = ServiceConfig(**json.loads(sys.argv[1]))
    runner = create_runner(config, state_dir=Path(sys.argv[2]), kill_grace=1.0)
    servicer = ProjectsServicer(runner)
    server = start_server(
        [
            ServedService(
                SERVICE_NAME, lambda s: pb_grpc.add_ProjectsServiceServicer_to_server(servicer, s)
            )
        ]
    )
    print(server.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
