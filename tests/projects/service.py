"""A projects service of the test's own (short kill grace, private state dir) beside a stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid.transport import Transport
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import RunningServer, ServedService, start_server
from mlgrid_services.projects.app import SERVICE_NAME, create_runner
from mlgrid_services.projects.runner import ProjectRunner
from mlgrid_services.projects.servicer import ProjectsServicer


@dataclass
class OwnService:
    runner: ProjectRunner
    server: RunningServer
    #: A transport whose ``projects`` stub reaches this service directly.
    transport: Transport


@contextmanager
def own_projects_service(
    config: ServiceConfig, state_dir: Path, kill_grace: float = 1.0
) -> Iterator[OwnService]:
    runner = create_runner(config, state_dir=state_dir, kill_grace=kill_grace)
    servicer = ProjectsServicer(runner)
    server = start_server(
        [
            ServedService(
                SERVICE_NAME,
                lambda s: pb_grpc.add_ProjectsServiceServicer_to_server(servicer, s),
                ["local"],
            )
        ]
    )
    transport = Transport(f"grpc://127.0.0.1:{server.port}")
    try:
        yield OwnService(runner, server, transport)
    finally:
        transport.close()
        server.stop(grace=1.0)
        runner.close()
