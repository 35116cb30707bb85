"""Runs a projects service in a process of its own (for the restart test).

    python serve_projects.py CONFIG STATE_DIR      (CONFIG: config_argument(ServiceConfig))

Prints the port it serves on, then serves until killed.
"""

from __future__ import annotations

import pickle
import sys
import threading
from pathlib import Path

from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import ServedService, start_server
from mlgrid_services.projects.app import SERVICE_NAME, create_runner
from mlgrid_services.projects.servicer import ProjectsServicer


def config_argument(config: ServiceConfig) -> str:
    """The service's configuration as one command-line argument (pickled: it holds nested
    settings and enums that JSON would flatten)."""
    return pickle.dumps(config).hex()


def main() -> None:
    config = pickle.loads(bytes.fromhex(sys.argv[1]))
    assert isinstance(config, ServiceConfig)
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
