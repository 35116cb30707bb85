"""Direct routes: a client on the gateway's host calls the tracking and registry services at
their own loopback addresses, with no relay (services/gateway/direct_routes.py, the SDK side in
sdk/mlgrid/tunnels.py).

Real gateway and services on port 0, the real SDK; the backends that answer with another
instance id are real gRPC servers too, recording what reached them.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.auth.v1 import auth_service_pb2_grpc as auth_grpc
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, PermissionDenied, Unauthenticated
from mlgrid.protocol import CHANNEL_OPTIONS
from mlgrid.transport import Transport
from mlgrid.tunnels import Tunnels
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.gateway.app import start_gateway
from mlgrid_services.gateway.tls import TlsSettings
from mlgrid_services.registry.sources import TrackingRunLookup
from tests.auth.conftest import ADMIN, auth_settings, basic
from tests.auth_edge.keys import make_ca
from tests.fixtures.stack import Stack, start_stack

TRACKING = "mlgrid.api.tracking.v1.TrackingService"
REGISTRY = "mlgrid.api.registry.v1.RegistryService"
ARTIFACTS = "mlgrid.api.artifacts.v1.ArtifactsService"


def backend_info(address: str) -> common_pb2.GetBackendInfoResponse:
    with grpc.insecure_channel(address) as channel:
        return common_pb2_grpc.BackendInfoServiceStub(channel).GetBackendInfo(
            common_pb2.GetBackendInfoRequest(), timeout=5
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(
        tmp_path_factory.mktemp("direct"),
        services=["tracking", "registry", "artifacts"],
        direct_routes=True,
    ) as running:
        yield running


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    settings = ("MLGRID_DIRECT_ROUTES", "MLGRID_GATEWAY_TUNNELS", "MLGRID_STORE_URI")
    credentials = ("MLGRID_TRACKING_USERNAME", "MLGRID_TRACKING_PASSWORD", "MLGRID_TRACKING_TOKEN")
    for name in (*settings, *credentials):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def log_through(uri: str, name: str, workdir: Path) -> tuple[Client, Transport]:
    """A user's few calls on a transport of their own: an experiment, a run, metrics, an
    artifact written and read back, a model."""
    transport = Transport(uri)
    client = Client(uri, transport=transport)
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    for step in range(20):
        client.log_metric(run_id, "loss", 1 / (step + 1), step=step)
    client.log_text(run_id, f"notes of {name}", "notes/readme.txt")
    fetched = client.download_artifacts(run_id, "notes/readme.txt", str(workdir))
    assert Path(fetched).read_text() == f"notes of {name}"
    client.create_registered_model(f"{name}-model")
    assert len(client.get_metric_history(run_id, "loss")) == 20
    return client, transport


#: What a local client's calls in log_through take: the default store's tracking and registry
#: backends, and the artifacts backend of the stack's file:// root.
ALL_DIRECT = {("tracking", ""), ("registry", ""), ("artifacts", "file:")}


def test_the_gateway_names_each_tunnel_routes_backend_with_its_instance(stack: Stack) -> None:
    routes = {(r.service, r.route): r for r in backend_info(stack.target).direct_routes}
    artifacts = backend_info(stack.servers["artifacts"].address)
    schemes = [scheme for served in artifacts.services for scheme in served.schemes]
    assert "file" in schemes and "s3" in schemes
    owners = {(TRACKING, ""): "tracking", (REGISTRY, ""): "registry"}
    owners.update({(ARTIFACTS, f"{scheme}:"): "artifacts" for scheme in schemes})
    assert set(routes) == set(owners)  # projects calls are routed per call by backend name
    for key, name in owners.items():
        address = stack.servers[name].address
        own = backend_info(address).instance
        assert routes[key].address == address
        assert len(own) == 32 and routes[key].instance == own
    instances = {backend_info(server.address).instance for server in stack.servers.values()}
    assert len(instances) == len(stack.servers)


def test_sdk_calls_go_straight_to_the_backends_and_nothing_is_relayed(
    stack: Stack, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tunnel = stack.gateway.tunnel
    assert tunnel is not None
    before = dict(tunnel.opened)
    _, transport = log_through(stack.tracking_uri, "straight", tmp_path)
    assert transport._tunnels is not None and transport._tunnels.direct == ALL_DIRECT
    assert dict(tunnel.opened) == before  # nothing went through the relay
    transport.close()


def test_with_direct_routes_off_the_same_calls_are_tunnelled(
    stack: Stack, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("MLGRID_DIRECT_ROUTES", "false")
    tunnel = stack.gateway.tunnel
    assert tunnel is not None
    before = dict(tunnel.opened)
    _, transport = log_through(stack.tracking_uri, "tunnelled", tmp_path)
    assert transport._tunnels is not None and transport._tunnels.direct == set()
    for service in ("tracking", "registry", "artifacts"):
        assert tunnel.opened[service] == before.get(service, 0) + 1
    transport.close()


def registered_source(stack: Stack, name: str, workdir: Path) -> tuple[Client, str, str]:
    """A run whose artifacts hold a model's files: (client, run id, the files' location)."""
    client = Client(stack.tracking_uri)
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    return client, run_id, client.get_run(run_id).info.artifact_uri.rstrip("/") + "/model"


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "tunnelled"])
def test_the_registrys_source_checks_skip_the_gateways_relay(
    stack: Stack, clean_env: pytest.MonkeyPatch, tmp_path: Path, direct: bool
) -> None:
    """The registry asks the artifacts service whether a version's source has files (and the
    tracking service for its run) the way an SDK client calls: straight to the backend on the
    gateway's host, else through a tunnel; not relayed call by call by the gateway's port."""
    if not direct:
        clean_env.setenv("MLGRID_DIRECT_ROUTES", "false")
    client, run_id, source = registered_source(stack, f"sources-{direct}", tmp_path)
    tunnel = stack.gateway.tunnel
    assert tunnel is not None
    before = dict(tunnel.opened)
    lookup = TrackingRunLookup(stack.target)
    try:
        assert lookup(run_id) == source.rpartition("/")[0]
        assert lookup.has_files(source)
        assert lookup.has_files(source + "/MLmodel")  # a file: found in its parent's listing
        assert not lookup.has_files(source + "/missing")
        assert lookup._tunnels is not None
        if direct:
            assert lookup._tunnels.direct == {("tracking", ""), ("artifacts", "file:")}
            assert dict(tunnel.opened) == before
        else:
            assert lookup._tunnels.direct == set()
            for service in ("tracking", "artifacts"):
                assert tunnel.opened[service] == before.get(service, 0) + 1
    finally:
        lookup.close()
    # The registry service itself, as a user registers: a source with files, then one without.
    model = f"sources-{direct}-model"
    client.create_registered_model(model)
    assert client.create_model_version(model, source, run_id=run_id).version == "1"
    with pytest.raises(InvalidParameterValue, match="has no files"):
        client.create_model_version(model, source + "/missing", run_id=run_id)


def test_a_gateway_without_the_option_announces_none(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    with start_stack(tmp_path, services=["tracking", "registry", "artifacts"]) as plain:
        assert list(backend_info(plain.target).direct_routes) == []
        _, transport = log_through(plain.tracking_uri, "no-option", tmp_path / "fetched")
        assert transport._tunnels is not None and transport._tunnels.direct == set()
        transport.close()


def test_replicated_backends_are_not_announced(tmp_path: Path) -> None:
    """Their tunnels are spread over the replicas by the gateway; a direct route would pin
    every client to one of them."""
    with start_stack(tmp_path, services=["tracking", "registry"], direct_routes=True) as running:
        second = start_server(create_service_app("tracking", running.config).services)
        try:
            assert running.gateway.add_backend(second.address, timeout=5)
            routes = [(r.service, r.route) for r in backend_info(running.target).direct_routes]
            assert routes == [(REGISTRY, "")]
        finally:
            second.stop(0)


def test_a_tls_gateway_announces_none_even_when_asked(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", "direct-routes-ca")
    server_cert = ca.issue("gateway")
    backend = start_server(create_service_app("tracking", _sqlite_config(tmp_path)).services)
    tls = TlsSettings.from_files(str(server_cert.cert_path), str(server_cert.key_path))
    gateways = [
        start_gateway(direct_routes=True, backends=[backend.address], tls=tls, internal_port=0),
        start_gateway(direct_routes=True, backends=[backend.address]),
    ]
    try:
        secure, plain = gateways
        credentials = grpc.ssl_channel_credentials(ca.cert_path.read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{secure.port}", credentials) as channel:
            info = common_pb2_grpc.BackendInfoServiceStub(channel).GetBackendInfo(
                common_pb2.GetBackendInfoRequest(), timeout=5
            )
        assert info.services and list(info.direct_routes) == []
        # Nor its plaintext internal port (mlgrid up's own services).
        assert secure.internal_port is not None
        assert list(backend_info(f"127.0.0.1:{secure.internal_port}").direct_routes) == []
        # The same gateway in plaintext does announce the backend.
        assert [r.address for r in backend_info(plain.address).direct_routes] == [backend.address]
    finally:
        for gateway in gateways:
            gateway.stop(0.5)
        backend.stop(0)


def _sqlite_config(directory: Path) -> ServiceConfig:
    return ServiceConfig(
        backend_store_uri=f"sqlite:///{directory / 'tls.db'}",
        default_artifact_root=(directory / "artifacts").as_uri(),
    )


# ------------------------------------------------------------ the client's checks, one by one


class _Answers(common_pb2_grpc.BackendInfoServiceServicer):
    """A BackendInfo server giving a fixed answer and keeping each caller's metadata."""

    def __init__(self, answer: common_pb2.GetBackendInfoResponse) -> None:
        self.answer = answer
        self.callers: list[dict[str, str]] = []

    def GetBackendInfo(self, request, context):  # type: ignore[no-untyped-def]
        self.callers.append(dict(context.invocation_metadata()))
        return self.answer


@contextmanager
def _serving(answers: _Answers) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    common_pb2_grpc.add_BackendInfoServiceServicer_to_server(answers, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@contextmanager
def _named(
    instance_answered: str,
    announced_host: str = "127.0.0.1",
    service: str = TRACKING,
    route_named: str = "",
) -> Iterator[tuple[str, _Answers]]:
    """A backend answering ``instance_answered`` and a gateway naming it for ``service`` and
    ``route_named`` with the instance "the-one-named" (and no tunnel port, so a route not taken
    goes to the gateway port)."""
    backend = _Answers(common_pb2.GetBackendInfoResponse(instance=instance_answered))
    with _serving(backend) as backend_address:
        port = backend_address.rpartition(":")[2]
        route = common_pb2.DirectRoute(
            service=service,
            route=route_named,
            address=f"{announced_host}:{port}",
            instance="the-one-named",
        )
        gateway = _Answers(common_pb2.GetBackendInfoResponse(direct_routes=[route]))
        with _serving(gateway) as gateway_address:
            yield gateway_address, backend


def _tracking_channel(
    gateway_address: str, host: str = "127.0.0.1", tls: bool = False
) -> grpc.Channel | None:
    with grpc.insecure_channel(gateway_address) as gateway:
        credentials = grpc.ssl_channel_credentials() if tls else None
        tunnels = Tunnels(gateway, host, CHANNEL_OPTIONS, credentials=credentials)
        channel = tunnels.channel("tracking")
        tunnels.close()
        return channel


def test_the_backend_named_is_used_after_it_answered_without_credentials(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("MLGRID_TRACKING_USERNAME", "someone")
    clean_env.setenv("MLGRID_TRACKING_PASSWORD", "a-password")
    with _named("the-one-named") as (gateway, backend):
        assert _tracking_channel(gateway) is not None
    assert len(backend.callers) == 1
    assert "authorization" not in backend.callers[0]


def test_an_artifacts_route_is_taken_for_its_own_scheme_only(
    clean_env: pytest.MonkeyPatch,
) -> None:
    named = _named("the-one-named", service=ARTIFACTS, route_named="file:")
    with named as (gateway, backend), grpc.insecure_channel(gateway) as channel:
        tunnels = Tunnels(channel, "127.0.0.1", CHANNEL_OPTIONS)
        assert tunnels.channel("artifacts", "s3:") is None
        assert tunnels.channel("tracking") is None
        assert backend.callers == []
        assert tunnels.channel("artifacts", "file:") is not None
        assert tunnels.direct == {("artifacts", "file:")}
        tunnels.close()
    assert len(backend.callers) == 1


def test_another_process_on_the_port_gets_only_the_check_and_the_route_is_not_taken(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("MLGRID_TRACKING_TOKEN", "mlg_secret")
    with _named("someone-else") as (gateway, backend):
        assert _tracking_channel(gateway) is None  # the gateway port, as without a route
    assert len(backend.callers) == 1
    assert "authorization" not in backend.callers[0]


@pytest.mark.parametrize(
    ("case", "host", "tls", "setting", "announced_host"),
    [
        ("the gateway reached on another address", "192.0.2.10", False, None, "127.0.0.1"),
        ("a TLS gateway", "127.0.0.1", True, None, "127.0.0.1"),
        ("MLGRID_DIRECT_ROUTES=false", "127.0.0.1", False, "false", "127.0.0.1"),
        ("MLGRID_GATEWAY_TUNNELS=false", "127.0.0.1", False, "tunnels-off", "127.0.0.1"),
        ("an address that is not loopback", "127.0.0.1", False, None, "192.0.2.10"),
    ],
)
def test_no_direct_call_is_tried(
    clean_env: pytest.MonkeyPatch,
    case: str,
    host: str,
    tls: bool,
    setting: str | None,
    announced_host: str,
) -> None:
    if setting == "false":
        clean_env.setenv("MLGRID_DIRECT_ROUTES", "false")
    if setting == "tunnels-off":
        clean_env.setenv("MLGRID_GATEWAY_TUNNELS", "false")
    with _named("the-one-named", announced_host) as (gateway, backend):
        assert _tracking_channel(gateway, host=host, tls=tls) is None, case
    assert backend.callers == [], case


# ------------------------------------------------------------ auth: the services check each call


def test_with_auth_on_a_direct_call_needs_credentials_and_permission(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'auth.db'}"
    with start_stack(
        tmp_path, backend_store_uri=store, auth=auth_settings(store), direct_routes=True,
        services=["tracking", "registry"],
    ) as running:  # fmt: skip
        assert running.gateway.tunnel is not None
        # No credentials: refused by the tracking service itself.
        anonymous = Transport(running.tracking_uri)
        with pytest.raises(Unauthenticated):
            Client(running.tracking_uri, transport=anonymous).create_experiment("anonymous")
        assert anonymous._tunnels is not None and anonymous._tunnels.direct == {("tracking", "")}
        anonymous.close()
        # The admin: an experiment and a run of their own, and a user with no permission.
        clean_env.setenv("MLGRID_TRACKING_USERNAME", ADMIN[0])
        clean_env.setenv("MLGRID_TRACKING_PASSWORD", ADMIN[1])
        admin_transport = Transport(running.tracking_uri)
        admin = Client(running.tracking_uri, transport=admin_transport)
        run_id = admin.create_run(admin.create_experiment("admins")).info.run_id
        admin.log_metric(run_id, "loss", 0.5, step=1)
        auth_grpc.AuthServiceStub(running.channel()).CreateUser(
            auth_pb.CreateUserRequest(username="reader", password="reader-password-1"),
            metadata=basic(*ADMIN),
        )
        assert admin_transport._tunnels is not None
        assert admin_transport._tunnels.direct == {("tracking", "")}
        # That user, on the direct route too: refused by the tracking service.
        clean_env.setenv("MLGRID_TRACKING_USERNAME", "reader")
        clean_env.setenv("MLGRID_TRACKING_PASSWORD", "reader-password-1")
        reader_transport = Transport(running.tracking_uri)
        reader = Client(running.tracking_uri, transport=reader_transport)
        with pytest.raises(PermissionDenied):
            reader.log_metric(run_id, "loss", 0.9, step=2)
        assert reader_transport._tunnels is not None
        assert reader_transport._tunnels.direct == {("tracking", "")}
        reader_transport.close()
        assert running.gateway.tunnel.opened["tracking"] == 0
        # Nothing of the refused call was written.
        clean_env.setenv("MLGRID_TRACKING_USERNAME", ADMIN[0])
        clean_env.setenv("MLGRID_TRACKING_PASSWORD", ADMIN[1])
        assert [m.value for m in admin.get_metric_history(run_id, "loss")] == [0.5]
        admin_transport.close()
