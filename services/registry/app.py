"""The registry service as the hosting process sees it: ``create(config) -> ServiceApp``."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from mlgrid.api.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService
from mlgrid_services.common.store_router import StoreRouter

from .access_rules import registry_rules
from .domain import Registry
from .servicer import RegistryServicer
from .source_access import source_access
from .sources import TrackingRunLookup
from .stores import open_registry_store, registry_stores

SERVICE_NAME = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


def create(config: ServiceConfig) -> ServiceApp:
    """Opens the registry store (``config.effective_registry_store_uri``, migrated to head) and
    returns the servicer; runs are looked up through ``config.gateway_target``."""
    runs = TrackingRunLookup(config.gateway_target, auth=config.auth)
    policy = policy_for(config)
    access = source_access(config.auth, runs)

    def open_registry(uri: str) -> tuple[Registry, Callable[[], None]]:
        store = open_registry_store(uri)
        return Registry(store, runs, policy, access), store.close

    registries = StoreRouter(
        open_registry,
        default_uri=config.effective_registry_store_uri,
        opened_on_request=registry_stores().plugin_schemes(),
        what="registry service",
    )
    servicer = RegistryServicer(registries)

    def register(server: grpc.Server) -> None:
        registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)

    def close() -> None:
        runs.close()
        registries.close()

    return ServiceApp(
        services=[
            ServedService(
                SERVICE_NAME, register, registry_stores().schemes(), rules=registry_rules()
            )
        ],
        close=close,
    )
