"""What travels between the SDK, the gateway and the services besides the protobuf messages:
metadata keys, the tunnels' ``CONNECT`` headers, reserved prefixes and the gRPC channel and
server options the two ends agree on. Defined once; the SDK, the services, plugins and
translators (MLflow's REST API, the MLflow plugin) import them from here.

Plain data only, so that any layer can import it without pulling in the SDK's transport.
"""

from __future__ import annotations

# ---------------------------------------------------------------- request metadata

#: The tracking/registry store a call is meant for (DESIGN.md, routing). Set by the SDK from
#: ``MLGRID_STORE_URI``; the gateway routes by its scheme, the services open that store.
STORE_URI_METADATA = "mlgrid-store-uri"

#: Metadata of mlgrid's own hops. Never accepted from callers: the gateway drops it from what it
#: forwards, and request header providers may not send it.
INTERNAL_METADATA_PREFIX = "mlgrid-internal-"

#: Metadata key prefixes callers may not set: gRPC's own, HTTP/2 pseudo-headers, mlgrid's hops.
RESERVED_METADATA_PREFIXES: tuple[str, ...] = ("grpc-", ":", INTERNAL_METADATA_PREFIX)

#: Trailing metadata carrying a ``google.rpc.Status`` with mlgrid's ``ErrorInfo``. Present when
#: a service answered; absent when a connection failed on the way (see ``mlgrid._rpc_errors``).
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# ---------------------------------------------------------------- authentication

#: Credentials a caller presents to the gateway (gRPC metadata; the REST port reads the HTTP
#: header of the same name): ``Basic <base64 user:password>`` or ``Bearer <token>`` (an mlgrid
#: access token or an OIDC JWT from the configured issuer).
AUTHORIZATION_METADATA = "authorization"

#: The verified caller, as a short-lived assertion the gateway signs after authenticating the
#: credentials above and the services check (services/common/auth). Internal: callers cannot set
#: it, since the gateway drops every ``mlgrid-internal-`` key it receives.
IDENTITY_METADATA = INTERNAL_METADATA_PREFIX + "identity"

#: The workspace a caller creates experiments, registered models and project runs in (set by the
#: SDK from ``MLGRID_WORKSPACE``); absent: the default workspace.
WORKSPACE_METADATA = "mlgrid-workspace"

# ---------------------------------------------------------------- tunnels (HTTP CONNECT)

#: The full gRPC service name a tunnel is for (``mlgrid.api.tracking.v1.TrackingService``).
TUNNEL_SERVICE_HEADER = "mlgrid-service"
#: The routing value a tunnel is pinned to (artifacts: ``"<scheme>:"``); absent: the default.
TUNNEL_ROUTE_HEADER = "mlgrid-route"

# ---------------------------------------------------------------- channel and server options

#: Largest single message either end accepts. Bulk data (artifacts, metric history) is streamed
#: in chunks, so this only bounds one request such as a 1,000-entity log_batch.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: Client channels (the SDK, the gateway towards its backends, services calling each other
#: through the gateway): keepalive pings every 30 s, which SERVER_OPTIONS allow, so no server
#: ever answers GOAWAY(too_many_pings).
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

#: Servers: accept client pings as often as every 10 s, even between calls, and never punish
#: them with a strike.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
]

#: Channels to a near peer that restarts quickly (the gateway's to its backends, the SDK's
#: tunnels through the gateway): reconnect within a second or two rather than gRPC's default of
#: up to two minutes.
RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
