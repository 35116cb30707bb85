"""The tracking service as a ServiceApp: store from the config, servicer, announced schemes."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from mlgrid.api.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService
from mlgrid_services.common.store_router import StoreRouter

from .domain import TrackingDomain
from .servicer import TrackingServicer
from .store import TRACKING_STORES, open_store

SERVICE_NAME = tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


def create(config: ServiceConfig) -> ServiceApp:
    """Opens (and migrates) the store at ``config.backend_store_uri`` and serves it, and the
    stores of installed plugins that calls name (metadata mlgrid-store-uri)."""
    policy = policy_for(config)

    def open_domain(uri: str) -> tuple[TrackingDomain, Callable[[], None]]:
        store = open_store(uri, config.effective_artifact_root)
        return TrackingDomain(store, policy), store.close

    domains = StoreRouter(
        open_domain,
        default_uri=config.backend_store_uri,
        opened_on_request=TRACKING_STORES.plugin_schemes(),
        what="tracking service",
    )
    servicer = TrackingServicer(domains)

    def register(server: grpc.Server) -> None:
        tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server(servicer, server)

    served = ServedService(name=SERVICE_NAME, register=register, schemes=TRACKING_STORES.schemes())
    return ServiceApp(services=[served], close=domains.close)
