"""Routes that name several replicas: targets, tunnel order, discovery grouping, retry config."""

from __future__ import annotations

import json

import pytest

from mlgrid_services.gateway.methods import builtin_services
from mlgrid_services.gateway.replicas import ReplicaPicker, channel_target, service_config
from mlgrid_services.gateway.routing import DEFAULT, RoutingTable


def test_one_address_is_its_own_target() -> None:
    assert channel_target("127.0.0.1:7000") == "127.0.0.1:7000"
    assert channel_target("unix:/tmp/x.sock") == "unix:/tmp/x.sock"
    assert channel_target("dns:///tracking.mlgrid.svc:6001") == "dns:///tracking.mlgrid.svc:6001"


def test_a_list_becomes_a_resolved_ipv4_list() -> None:
    assert channel_target("127.0.0.1:7000, localhost:7001") == "ipv4:127.0.0.1:7000,127.0.0.1:7001"


def test_a_list_of_unix_sockets_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="unix sockets cannot be balanced"):
        channel_target("unix:/a.sock,unix:/b.sock")


def test_tunnels_start_at_the_next_replica_each_time() -> None:
    picker = ReplicaPicker()
    address = "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
    firsts = [picker.order(address)[0] for _ in range(6)]
    assert firsts == [("127.0.0.1", p) for p in (1, 2, 3, 1, 2, 3)]
    # Each order still holds every replica, so a refused one is skipped.
    assert sorted(picker.order(address)) == [("127.0.0.1", p) for p in (1, 2, 3)]


def test_replicas_announcing_the_same_thing_share_a_route_others_do_not() -> None:
    table = RoutingTable(builtin_services())
    group = ("tracking-signature",)
    table.announce("tracking", ["sqlite"], "10.0.0.1:1", replicas_of=group)
    table.announce("tracking", ["sqlite"], "10.0.0.1:1,10.0.0.2:1", replicas_of=group)
    # A different backend (another signature) announcing the same keys does not take them.
    table.announce("tracking", ["sqlite"], "10.9.9.9:1", replicas_of=("plugin",))
    route = table.lookup("tracking", DEFAULT)
    assert route is not None and route.address == "10.0.0.1:1,10.0.0.2:1"
    sqlite = table.lookup("tracking", "sqlite")
    assert sqlite is not None and sqlite.address == "10.0.0.1:1,10.0.0.2:1"


def test_channels_balance_health_check_and_retry_only_idempotent_methods() -> None:
    services = builtin_services()
    config = json.loads(service_config(k for s in services for k in s.methods.values()))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": ""}
    (retry,) = config["methodConfig"]
    names = {(n["service"].rsplit(".", 1)[1], n["method"]) for n in retry["name"]}
    assert ("TrackingService", "GetRun") in names
    assert ("TrackingService", "LogMetric") in names  # identical points are stored once
    assert ("TrackingService", "CreateRun") not in names  # a retry would make a second run
    assert ("ArtifactsService", "UploadArtifact") not in names
    assert retry["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_tunnels_resolve_a_name_to_every_address_it_has() -> None:
    # A headless Service's name resolves to every ready pod; localhost stands in for it here.
    order = ReplicaPicker().order("localhost:7000")
    assert ("127.0.0.1", 7000) in order
