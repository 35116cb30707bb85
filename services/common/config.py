"""Configuration shared by the services, with one docstring per field."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mlgrid import environment as env

from .auth.settings import AuthSettings

#: The embedded defaults, as in MLflow: a SQLite file and an artifact folder in the working dir.
DEFAULT_STORE_URI = env.MLGRID_BACKEND_STORE_URI.default
DEFAULT_ARTIFACT_DIR = "mlgrid-artifacts"


def default_artifact_root(base: Path | None = None) -> str:
    """``file://`` URI of ./mlgrid-artifacts (absolute, so every process agrees on it)."""
    return ((base or Path.cwd()) / DEFAULT_ARTIFACT_DIR).resolve().as_uri()


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of the mlgrid services; every process of a stack gets the same values."""

    #: Tracking store: ``sqlite:///path``, ``postgresql://…`` or a plugin scheme.
    backend_store_uri: str = DEFAULT_STORE_URI
    #: Registry store; the tracking store when None (as in MLflow).
    registry_store_uri: str | None = None
    #: Artifact root of experiments that do not name their own (``file:///…`` or ``s3://…``).
    default_artifact_root: str = ""
    #: gRPC target of the gateway (e.g. "127.0.0.1:50051"), through which services that need
    #: another service (registry → tracking, projects → tracking/artifacts) reach it.
    gateway_target: str | None = None
    #: Tracking URI handed to project runs' child processes (``grpc://host:port``).
    public_tracking_uri: str | None = None
    #: Authentication and permission checks (off unless MLGRID_AUTH=true; docs/auth.md).
    auth: AuthSettings = field(default_factory=AuthSettings)

    @property
    def effective_registry_store_uri(self) -> str:
        return self.registry_store_uri or self.backend_store_uri

    @property
    def effective_artifact_root(self) -> str:
        return self.default_artifact_root or default_artifact_root()

    def with_gateway(self, target: str) -> ServiceConfig:
        """A copy that reaches the other services through ``target``."""
        return replace(
            self,
            gateway_target=target,
            public_tracking_uri=self.public_tracking_uri or f"grpc://{target}",
        )

    @classmethod
    def from_env(cls, **overrides: str | None) -> ServiceConfig:
        """Defaults, then MLGRID_* environment variables, then explicit non-None overrides."""
        values: dict[str, str | None] = {
            "backend_store_uri": env.MLGRID_BACKEND_STORE_URI.get(),
            "registry_store_uri": env.MLGRID_REGISTRY_STORE_URI.get(),
            "default_artifact_root": env.MLGRID_DEFAULT_ARTIFACT_ROOT.get() or "",
            "gateway_target": env.MLGRID_GATEWAY_TARGET.get(),
            "public_tracking_uri": env.MLGRID_PUBLIC_TRACKING_URI.get(),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        auth = AuthSettings.from_env(store_uri=values["backend_store_uri"] or DEFAULT_STORE_URI)
        return cls(**values, auth=auth)  # type: ignore[arg-type]
