"""The services mlgrid ships, in start order: a module of its own, so that the ``mlgrid up``
supervisor can name them without importing gRPC and the protos (``app.py`` needs both)."""

from __future__ import annotations

SERVICE_NAMES: tuple[str, ...] = ("tracking", "artifacts", "registry", "projects")
