"""The URIs the plugin answers to, and how they map onto the SDK's.

Tracking and registry stores: ``mlgrid://host:port`` is a gateway over plaintext gRPC (the SDK's
``grpc://host:port``); ``mlgrids://host:port`` is the same over TLS (the SDK's ``grpcs://``, with
its certificate settings).

Artifacts: mlgrid hands out the artifact URIs of its own storage (``file:///srv/…`` on the
server's disk, ``s3://bucket/…``). A remote ``mlflow`` client cannot write to the server's
``file://`` root, and should not need S3 credentials either: mlgrid's artifacts service does the
storing. So the plugin shows MLflow each storage URI wrapped in one that names the gateway:

    file:///srv/art/1/<run>/artifacts  ->  mlgrid-artifacts://host:port/file:///srv/art/1/<run>/artifacts
    s3://bucket/1/<run>/artifacts      ->  mlgrid-artifacts://host:port/s3://bucket/1/<run>/artifacts

(``mlgrids-artifacts://`` through a TLS gateway). The wrapped form keeps the storage URI readable
and hierarchical, so MLflow's own path arithmetic (appending ``model/MLmodel``, splitting off the
last segment) works on it unchanged; :func:`unwrap_artifact_uri` also accepts the forms that path
normalisation makes of it (``file:/srv/…``, ``s3:/bucket/…``). Everything the plugin sends back to
mlgrid (an experiment's artifact location, a version's source) is unwrapped first, so mlgrid only
ever stores its own URIs and its SDK reads what the plugin wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload
from urllib.parse import urlsplit

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.uris import SDK_GATEWAY_SCHEMES

#: Tracking/registry scheme -> the SDK's scheme for the same gateway (one table, in mlgrid.uris).
STORE_SCHEMES = SDK_GATEWAY_SCHEMES
#: Tracking/registry scheme -> the artifact scheme that names the same gateway.
ARTIFACT_SCHEMES = {"mlgrid": "mlgrid-artifacts", "mlgrids": "mlgrids-artifacts"}
_STORE_BY_ARTIFACT_SCHEME = {v: k for k, v in ARTIFACT_SCHEMES.items()}


@dataclass(frozen=True)
class Gateway:
    """A gateway as the plugin names it: ``mlgrid://host:port`` or ``mlgrids://host:port``."""

    #: "mlgrid" (plaintext) or "mlgrids" (TLS).
    scheme: str
    #: "host:port".
    address: str

    @property
    def store_uri(self) -> str:
        """The URI MLflow knows this gateway by (``mlgrid://host:port``)."""
        return f"{self.scheme}://{self.address}"

    @property
    def sdk_uri(self) -> str:
        """The SDK's tracking URI for this gateway (``grpc://host:port``)."""
        return f"{STORE_SCHEMES[self.scheme]}://{self.address}"

    @property
    def artifact_prefix(self) -> str:
        """What wrapped artifact URIs of this gateway start with."""
        return f"{ARTIFACT_SCHEMES[self.scheme]}://{self.address}/"


def _check_address(
    uri: str, netloc: str, hostname: str | None, port: int | None, expected: str
) -> None:
    if not hostname or port is None or "@" in netloc:
        raise InvalidParameterValue(
            f"URI {uri!r} needs a host and a port and nothing else; expected {expected}"
        )


def parse_store_uri(uri: str) -> Gateway:
    """The gateway a tracking or registry URI (``mlgrid://host:port``) names."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        raise InvalidParameterValue(
            f"URI {uri!r} is not a valid mlgrid:// address; expected mlgrid://host:port"
        ) from None
    if parts.scheme not in STORE_SCHEMES:
        raise InvalidParameterValue(
            f"URI {uri!r} is not an mlgrid address; expected mlgrid://host:port "
            "(or mlgrids://host:port for TLS)"
        )
    _check_address(uri, parts.netloc, parts.hostname, port, "mlgrid://host:port")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise InvalidParameterValue(
            f"URI {uri!r} names a path; an mlgrid gateway is only mlgrid://host:port"
        )
    return Gateway(parts.scheme, parts.netloc)


@overload
def wrap_artifact_uri(gateway: Gateway, storage_uri: str) -> str: ...
@overload
def wrap_artifact_uri(gateway: Gateway, storage_uri: None) -> None: ...
def wrap_artifact_uri(gateway: Gateway, storage_uri: str | None) -> str | None:
    """The URI MLflow is shown for one of mlgrid's storage URIs (None and "" pass through).

    URIs that MLflow resolves itself (``runs:/``, ``models:/``) and URIs that are already
    wrapped stay as they are.
    """
    if not storage_uri:
        return storage_uri
    scheme = urlsplit(storage_uri).scheme
    if scheme in ("runs", "models") or scheme in _STORE_BY_ARTIFACT_SCHEME:
        return storage_uri
    return gateway.artifact_prefix + storage_uri


def is_wrapped(uri: str) -> bool:
    """True for a ``mlgrid-artifacts://`` (or ``mlgrids-artifacts://``) URI."""
    return urlsplit(uri).scheme in _STORE_BY_ARTIFACT_SCHEME


def split_artifact_uri(uri: str) -> tuple[Gateway, str]:
    """The gateway and the storage URI a wrapped artifact URI names."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in _STORE_BY_ARTIFACT_SCHEME:
        raise InvalidParameterValue(
            f"artifact URI {uri!r} is not an mlgrid artifact URI; expected "
            "mlgrid-artifacts://host:port/<storage URI>"
        )
    address, slash, storage = rest.partition("/")
    gateway = Gateway(_STORE_BY_ARTIFACT_SCHEME[scheme], address)
    parts = urlsplit(f"{gateway.scheme}://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    _check_address(
        uri, parts.netloc, parts.hostname, port, "mlgrid-artifacts://host:port/<storage URI>"
    )
    storage_scheme, colon, tail = storage.partition(":")
    if not slash or not colon or not storage_scheme or not tail.startswith("/"):
        raise InvalidParameterValue(
            f"artifact URI {uri!r} does not name a storage URI after the gateway; expected "
            "mlgrid-artifacts://host:port/<scheme>://<location>"
        )
    if not tail.startswith("//"):
        # Path normalisation turned "file:///x" into "file:/x" and "s3://b/x" into "s3:/b/x".
        tail = ("//" if storage_scheme == "file" else "/") + tail
    return gateway, f"{storage_scheme}:{tail}"


def unwrap_artifact_uri(uri: str | None) -> str | None:
    """mlgrid's storage URI for a wrapped one; any other URI (or None) is returned as it is."""
    if not uri or not is_wrapped(uri):
        return uri
    return split_artifact_uri(uri)[1]
