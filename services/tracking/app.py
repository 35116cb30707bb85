"""The tracking service as a ServiceApp: store from the config, servicer, announced schemes."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from mlgrid.api.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService
from mlgrid_services.common.store_dispatch import with_plugin_stores

from .domain import TrackingDomain
from .servicer import TrackingServicer
from .store import TRACKING_STORES, open_store

SERVICE_NAME = tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


def create(config: ServiceConfig) -> ServiceApp:
    """Opens (and migrates) the store at ``config.backend_store_uri`` and serves it."""
    store = open_store(config.backend_store_uri, config.effective_artifact_root)
    policy = policy_for(config)

    def open_plugin_store(uri: str) -> tuple[TrackingServicer, Callable[[], None]]:
        plugin_store = open_store(uri, config.effective_artifact_root)
        return TrackingServicer(TrackingDomain(plugin_store, policy)), plugin_store.close

    # Calls naming a store of an installed plugin (metadata mlgrid-store-uri, e.g.
    # file-plugin:///x) are served by that store; every other call by the configured store.
    servicer, close_plugin_stores = with_plugin_stores(
        TrackingServicer(TrackingDomain(store, policy)),
        TRACKING_STORES.plugin_schemes(),
        open_plugin_store,
        default_uri=config.backend_store_uri,
        base=tracking_service_pb2_grpc.TrackingServiceServicer,
        descriptor=tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"],
        what="tracking service",
    )

    def register(server: grpc.Server) -> None:
        tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server(servicer, server)

    def close() -> None:
        close_plugin_stores()
        store.close()

    served = ServedService(name=SERVICE_NAME, register=register, schemes=TRACKING_STORES.schemes())
    return ServiceApp(services=[served], close=close)
