"""What a service module offers the process that hosts it.

Each ``mlgrid_services.<name>.app`` module defines ``create(config) -> ServiceApp``. The same
function backs ``mlgrid server <name>`` (one service per process), ``mlgrid up`` (one process
per service, behind the gateway) and embedded mode (everything in the caller's process).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from mlgrid.api.artifacts.v1 import artifacts_service_pb2
from mlgrid.api.auth.v1 import auth_service_pb2
from mlgrid.api.projects.v1 import projects_service_pb2
from mlgrid.api.registry.v1 import registry_service_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2

from .config import ServiceConfig
from .server import ServedService
from .service_names import SERVICE_NAMES

__all__ = [
    "GRPC_SERVICES",
    "SERVICE_NAMES",
    "ServiceApp",
    "available_services",
    "create_service_app",
    "service_module",
]

#: Which service serves each gRPC service (full names, from the protos), so that a process can
#: send a call to its service before importing it (embedded mode starts services on first use).
GRPC_SERVICES: dict[str, str] = {
    tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name: "tracking",
    # AuthService lives with tracking (services/tracking/app.py).
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name: "tracking",
    artifacts_service_pb2.DESCRIPTOR.services_by_name["ArtifactsService"].full_name: "artifacts",
    registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name: "registry",
    projects_service_pb2.DESCRIPTOR.services_by_name["ProjectsService"].full_name: "projects",
}


@dataclass
class ServiceApp:
    """The gRPC services one mlgrid service contributes, and how to release its resources."""

    services: list[ServedService]
    close: Callable[[], None] = field(default=lambda: None)
    #: Told (host, port) once the server is bound (the projects service hands it to its peers).
    serving: Callable[[str, int], None] = field(default=lambda _host, _port: None)


def available_services() -> list[str]:
    """The services whose implementation is present in this installation."""
    return [name for name in SERVICE_NAMES if service_module(name) is not None]


def service_module(name: str) -> ModuleType | None:
    """The ``app`` module of service ``name``, or None when this installation lacks it."""
    try:
        module = importlib.import_module(f"mlgrid_services.{name}.app")
    except ModuleNotFoundError:
        return None
    return module if hasattr(module, "create") else None


def create_service_app(name: str, config: ServiceConfig) -> ServiceApp:
    """Builds service ``name`` (one of SERVICE_NAMES) from ``config``."""
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(f"mlgrid_services.{name}.app")
    app: ServiceApp = module.create(config)
    return app
