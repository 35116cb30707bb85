"""The table of built-in project backends, and the one registry that also holds the plugins.

Every backend, built-in or plugin, is a :class:`mlgrid.projects.backend.ProjectBackend` taking
the same :class:`~mlgrid.projects.backend.RunRequest`; the runner asks this registry for a
backend by name and never special-cases one. Built-ins are imported only when first used, so a
backend's dependencies (the ``docker`` SDK, the ``kubernetes`` client) load with it. A plugin
registered under a built-in's name replaces it.
"""

from __future__ import annotations

import threading

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry
from mlgrid.projects.backend import BackendHost, ProjectBackend

__all__ = ["BUILTIN_BACKENDS", "DEFAULT_BACKEND", "BackendTable"]

#: Name -> "module:class" of the backends that ship with mlgrid.
BUILTIN_BACKENDS: dict[str, str] = {
    "local": "mlgrid_services.projects.local_backend:LocalBackend",
    "docker": "mlgrid_services.projects.docker_backend.backend:DockerBackend",
    "kubernetes": "mlgrid_services.projects.kubernetes.backend:KubernetesBackend",
}
#: What a submission without a backend runs on.
DEFAULT_BACKEND = "local"


class BackendTable:
    """Backends by name (built-ins and ``mlgrid.project_backend`` plugins), built once each."""

    def __init__(self, host: BackendHost) -> None:
        self.host = host
        self.registry: SchemeRegistry[ProjectBackend] = SchemeRegistry(
            ENTRY_POINT_GROUPS["project_backend"],
            "project backend",
            builtins=dict(BUILTIN_BACKENDS),  # type: ignore[arg-type]
        )
        self._instances: dict[str, tuple[type[ProjectBackend], ProjectBackend]] = {}
        self._lock = threading.Lock()

    def register(self, name: str, cls: type[ProjectBackend] | str) -> None:
        """Adds (or replaces) the backend called ``name``."""
        self.registry.register(name, cls)

    def names(self) -> list[str]:
        try:
            return self.registry.schemes()
        except Exception:  # discovery must never keep the service from starting
            return sorted(BUILTIN_BACKENDS)

    def get(self, name: str) -> ProjectBackend:
        """The backend called ``name``; the error lists the known names."""
        if name not in self.names():
            raise InvalidParameterValue(
                f"backend {name!r} is not available here; known backends: {', '.join(self.names())}"
            )
        cls = self.registry.get(name)
        with self._lock:
            cached = self._instances.get(name)
            if cached is not None and cached[0] is cls:
                return cached[1]
            backend = cls.for_host(self.host)
            self._instances[name] = (cls, backend)
            return backend
