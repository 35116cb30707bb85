"""The tracking service as a ServiceApp: store from the config, servicer, announced schemes."""

from __future__ import annotations

import grpc

from mlgrid.api.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import ServedService

from .domain import TrackingDomain
from .servicer import TrackingServicer
from .store import STORE_CLASSES, open_store

SERVICE_NAME = tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


def create(config: ServiceConfig) -> ServiceApp:
    """Opens (and migrates) the store at ``config.backend_store_uri`` and serves it."""
    store = open_store(config.backend_store_uri, config.effective_artifact_root)
    servicer = TrackingServicer(TrackingDomain(store))

    def register(server: grpc.Server) -> None:
        tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server(servicer, server)

    served = ServedService(name=SERVICE_NAME, register=register, schemes=sorted(STORE_CLASSES))
    return ServiceApp(services=[served], close=store.close)
