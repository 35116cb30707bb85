"""The tracking service as a ServiceApp: store from the config, servicer, announced schemes."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from mlgrid.api.auth.v1 import auth_service_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.auth.management import SERVICE_NAME as AUTH_SERVICE_NAME
from mlgrid_services.common.auth.management import AuthServicer, management_rules
from mlgrid_services.common.auth.runtime import auth_runtime
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService
from mlgrid_services.common.store_router import StoreRouter

from .access_rules import tracking_rules
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

    served = ServedService(
        name=SERVICE_NAME,
        register=register,
        schemes=TRACKING_STORES.schemes(),
        rules=tracking_rules(lambda: domains.for_uri(None)),
    )
    # AuthService lives with tracking, as MLflow's basic-auth app lives in its tracking server.
    auth = AuthServicer(lambda: auth_runtime(config.auth))

    def register_auth(server: grpc.Server) -> None:
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(auth, server)

    auth_served = ServedService(
        name=AUTH_SERVICE_NAME, register=register_auth, rules=management_rules()
    )
    return ServiceApp(services=[served, auth_served], close=domains.close)
