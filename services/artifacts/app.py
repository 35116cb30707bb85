"""Builds the artifacts service for a process (``mlgrid server artifacts``, ``mlgrid up``, embedded)."""

from __future__ import annotations

import grpc

from mlgrid.api.artifacts.v1 import artifacts_service_pb2, artifacts_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import ServedService

from .domain import ArtifactsDomain, allowed_roots_from_env
from .repositories import ARTIFACT_REPOSITORIES
from .servicer import ArtifactsServicer

SERVICE_NAME = artifacts_service_pb2.DESCRIPTOR.services_by_name["ArtifactsService"].full_name


def allowed_file_roots(config: ServiceConfig) -> list[str] | None:
    """Local roots clients may use: the default artifact root (when local) and the env list.

    None (any local root) when ``MLGRID_ARTIFACTS_ALLOWED_ROOTS`` is ``*``, or in embedded mode
    (the stack talks over a private unix socket, so its only client is the process that owns
    the files anyway, and MLflow users expect experiments to put artifacts anywhere).
    """
    extra = allowed_roots_from_env()
    if extra == ["*"] or (config.gateway_target or "").startswith("unix:"):
        return None
    roots = [config.effective_artifact_root, *extra]
    return [r for r in roots if r.startswith("file:") or r.startswith("/")]


def create(config: ServiceConfig) -> ServiceApp:
    """The artifacts service, announcing every scheme with a repository (file, s3, plugins')."""
    servicer = ArtifactsServicer(ArtifactsDomain(allowed_file_roots(config)))

    def register(server: grpc.Server) -> None:
        artifacts_service_pb2_grpc.add_ArtifactsServiceServicer_to_server(servicer, server)

    service = ServedService(
        name=SERVICE_NAME, register=register, schemes=ARTIFACT_REPOSITORIES.schemes()
    )
    return ServiceApp(services=[service])
