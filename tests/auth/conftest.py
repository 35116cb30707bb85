"""Fixtures of the auth tests: a real stack with auth on (gateway with tunnels, every service on
its own port, SQLite), users for each permission level, and ways to call it through the
gateway port, a tunnel and a service's own port."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixtures.stack import Stack, start_stack

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.auth.v1 import auth_service_pb2_grpc as auth_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.protocol import (
    AUTHORIZATION_METADATA,
    CHANNEL_OPTIONS,
    TUNNEL_ROUTE_HEADER,
    TUNNEL_SERVICE_HEADER,
)
from mlgrid_services.common.auth.settings import AuthSettings

ADMIN = ("admin", "admin-password-1")
SECRET = "a-test-secret-of-enough-length-0123456789"
#: Seconds a cached credential or grant is reused in these stacks (short, so tests see changes).
CACHE_SECONDS = 0.5


def basic(user: str, password: str) -> list[tuple[str, str]]:
    value = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [(AUTHORIZATION_METADATA, f"Basic {value}")]


def auth_settings(store_uri: str) -> AuthSettings:
    return AuthSettings(
        enabled=True,
        secret=SECRET,
        store_uri=store_uri,
        admin_username=ADMIN[0],
        admin_password=ADMIN[1],
        cache_seconds=CACHE_SECONDS,
    )


@dataclass
class AuthStack:
    """A stack with auth on, and channels to each of its ports."""

    stack: Stack
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    @property
    def admin(self) -> list[tuple[str, str]]:
        return basic(*ADMIN)

    def gateway(self) -> grpc.Channel:
        return self.stack.channel()

    def service_port(self, service: str) -> grpc.Channel:
        """A channel to one service's own port (as from inside a cluster)."""
        key = f"direct:{service}"
        if key not in self.channels:
            address = self.stack.servers[service].address
            self.channels[key] = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        return self.channels[key]

    def tunnel(
        self, full_service: str, credentials: list[tuple[str, str]] | None, route: str = ""
    ) -> grpc.Channel:
        """A channel through the gateway's tunnel port, as the SDK opens one; ``credentials``
        go on the CONNECT."""
        assert self.stack.gateway.tunnel is not None
        headers = f"{TUNNEL_SERVICE_HEADER}:{full_service}"
        if route:
            headers += f"\n{TUNNEL_ROUTE_HEADER}:{route}"
        if credentials:
            headers += f"\n{AUTHORIZATION_METADATA}:{credentials[0][1]}"
        key = f"tunnel:{headers}"
        if key not in self.channels:
            options = [
                *CHANNEL_OPTIONS,
                ("grpc.http_proxy", f"http://127.0.0.1:{self.stack.gateway.tunnel.port}"),
                ("grpc.http_connect_headers", headers),
            ]
            self.channels[key] = grpc.insecure_channel("mlgrid.tunnel:1", options=options)
        return self.channels[key]

    def auth(self) -> auth_grpc.AuthServiceStub:
        return auth_grpc.AuthServiceStub(self.gateway())

    def create_user(
        self, name: str, password: str = "", admin: bool = False
    ) -> list[tuple[str, str]]:
        password = password or f"{name}-password"
        self.auth().CreateUser(
            auth_pb.CreateUserRequest(username=name, password=password, is_admin=admin),
            metadata=self.admin,
        )
        return basic(name, password)

    def experiment_with_run(self, owner: list[tuple[str, str]], name: str) -> tuple[str, str]:
        """A new experiment of ``owner``'s, with one run in it: (experiment id, run id)."""
        stub = trk_grpc.TrackingServiceStub(self.gateway())
        experiment_id = stub.CreateExperiment(
            trk.CreateExperimentRequest(name=name), metadata=owner
        ).experiment_id
        run = stub.CreateRun(trk.CreateRunRequest(experiment_id=experiment_id), metadata=owner)
        return experiment_id, run.run.info.run_id

    def grant_on_experiment(
        self, owner: list[tuple[str, str]], experiment_id: str, username: str, level: str
    ) -> None:
        """``owner`` gives ``username`` permission ``level`` on the experiment."""
        self.auth().SetPermission(
            auth_pb.SetPermissionRequest(
                permission=auth_pb.Permission(
                    resource_type=auth_pb.RESOURCE_TYPE_EXPERIMENT,
                    resource_id=experiment_id,
                    username=username,
                    permission=level,
                )
            ),
            metadata=owner,
        )

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.stack.stop()


def start_auth_stack(tmp_path: Path, store_uri: str | None = None) -> AuthStack:
    store = store_uri or f"sqlite:///{tmp_path / 'mlgrid.db'}"
    stack = start_stack(tmp_path, backend_store_uri=store, auth=auth_settings(store))
    return AuthStack(stack)


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    stack = start_auth_stack(tmp_path_factory.mktemp("auth_stack"))
    try:
        yield stack
    finally:
        stack.close()


def code_of(call: Any) -> grpc.StatusCode:
    """The status code of a call made with ``call()`` (OK when it returned)."""
    try:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def error_of(call: Any) -> grpc.RpcError:
    try:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    except grpc.RpcError as err:
        return err
    raise AssertionError("the call succeeded")
