"""What a service module offers the process that hosts it.

Each ``mlgrid_services.<name>.app`` module defines ``create(config) -> ServiceApp``. The same
function backs ``mlgrid server <name>`` (one service per process), ``mlgrid up`` (one process
per service, behind the gateway) and embedded mode (everything in the caller's process).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import ServiceConfig
from .server import ServedService

#: The services mlgrid ships, in start order.
SERVICE_NAMES: tuple[str, ...] = ("tracking", "artifacts", "registry", "projects")


@dataclass
class ServiceApp:
    """The gRPC services one mlgrid service contributes, and how to release its resources."""

    services: list[ServedService]
    close: Callable[[], None] = field(default=lambda: None)


def available_services() -> list[str]:
    """The services whose implementation is present in this installation."""
    found = []
    for name in SERVICE_NAMES:
        try:
            module = importlib.import_module(f"mlgrid_services.{name}.app")
        except ModuleNotFoundError:
            continue
        if hasattr(module, "create"):
            found.append(name)
    return found


def create_service_app(name: str, config: ServiceConfig) -> ServiceApp:
    """Builds service ``name`` (one of SERVICE_NAMES) from ``config``."""
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(f"mlgrid_services.{name}.app")
    app: ServiceApp = module.create(config)
    return app
