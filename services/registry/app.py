"""The registry service as the hosting process sees it: ``create(config) -> ServiceApp``."""

from __future__ import annotations

import grpc

from mlgrid.api.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService

from .servicer import RegistryServicer
from .sources import TrackingRunLookup
from .stores import StoreSet

SERVICE_NAME = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


def create(config: ServiceConfig) -> ServiceApp:
    """Opens the registry store (``config.effective_registry_store_uri``, migrated to head) and
    returns the servicer; runs are looked up through ``config.gateway_target``."""
    stores = StoreSet(config.effective_registry_store_uri)
    runs = TrackingRunLookup(config.gateway_target)
    servicer = RegistryServicer(stores, runs, policy_for(config))

    def register(server: grpc.Server) -> None:
        registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)

    def close() -> None:
        runs.close()
        stores.close()

    return ServiceApp(
        services=[ServedService(SERVICE_NAME, register, stores.schemes())], close=close
    )
