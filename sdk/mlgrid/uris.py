"""The scheme of a URI, as every part of mlgrid reads it: the gateway routing a call, the SDK
picking a tunnel, a service picking the store or repository class, the plugin host checking a
plugin's URI. One function, so that they can never disagree on where a URI belongs.

The policy, once:

- the scheme is lower case (URI schemes are case-insensitive);
- a bare path (``/data/mlruns``, ``relative/dir``, ``C:\\data``) is ``file``, as MLflow reads it;
- a ``+driver`` suffix is dropped (``postgresql+psycopg`` is ``postgresql``): it picks the client
  library, not the backend, so both spellings reach the same store.
"""

from __future__ import annotations

import ipaddress


def uri_scheme(uri: str) -> str:
    """The scheme of ``uri`` by the policy above."""
    head, sep, rest = uri.partition(":")
    if not sep or not head or not head[0].isalpha():
        return "file"
    # "C:\\dir" and "C:/dir" are Windows paths, not schemes.
    if len(head) == 1 and rest[:1] in ("\\", "/") and not rest.startswith("//"):
        return "file"
    if not all(c.isalnum() or c in "+-." for c in head):
        return "file"
    return head.partition("+")[0].lower()


#: Schemes of URIs that name a gateway rather than a store: a tracking URI with one of these
#: connects to it; a store URI with one of these means "the gateway's default store".
GATEWAY_SCHEMES = frozenset({"grpc", "grpcs"})


def is_gateway_uri(uri: str) -> bool:
    """True when ``uri`` names a gateway (``grpc://``, ``grpcs://``) rather than a store."""
    return uri_scheme(uri) in GATEWAY_SCHEMES


#: Query parameters that carry a secret in database and object-store URIs.
_SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "secret", "token", "sslpassword"})


def redact_credentials(uri: str) -> str:
    """``uri`` fit for a log line: the password of its user part and secret query parameters
    (``?password=…``) replaced by ``***``; the user, host, path and other parameters kept, so
    the line still says which store was meant. A URI without credentials comes back unchanged."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    # The user part ends at the last "@" before the query: a password with a raw "@" or "/"
    # (not URL-encoded) is malformed, but must not leak either.
    end = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    user_part, at, _ = rest[:end].rpartition("@")
    if at and ":" in user_part:
        rest = f"{user_part.partition(':')[0]}:***@{rest[len(user_part) + 1 :]}"
    slash = rest.find("/", rest.rfind("@", 0, end) + 1)
    cut = min((i for i in (slash, rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        pairs = []
        for pair in query.split("&"):
            name, eq, _value = pair.partition("=")
            pairs.append(f"{name}=***" if eq and name.lower() in _SECRET_PARAMS else pair)
        tail = f"{path}?{'&'.join(pairs)}{hash_}{fragment}"
    return f"{scheme}://{authority}{tail}"


#: A gateway in the SDK's schemes -> the same gateway in the schemes of mlgrid's MLflow plugin
#: (``mlgrid://host:port``), which is how the unmodified ``mlflow`` client names it.
MLFLOW_GATEWAY_SCHEMES = {"grpc": "mlgrid", "grpcs": "mlgrids"}
SDK_GATEWAY_SCHEMES = {mlflow: sdk for sdk, mlflow in MLFLOW_GATEWAY_SCHEMES.items()}


def mlflow_gateway_uri(uri: str) -> str:
    """``grpc://host:port`` as the ``mlflow`` client names it (``mlgrid://host:port``); any other
    URI (a store, a plugin's) unchanged."""
    scheme, sep, rest = uri.partition("://")
    mapped = MLFLOW_GATEWAY_SCHEMES.get(scheme.lower()) if sep else None
    return f"{mapped}://{rest}" if mapped and rest else uri


def sdk_gateway_uri(uri: str) -> str:
    """``mlgrid://host:port`` (the ``mlflow`` client's name for a gateway, which a job configured
    for MLflow may hand the SDK through ``MLFLOW_TRACKING_URI``) as the SDK names it
    (``grpc://host:port``); any other URI unchanged."""
    scheme, sep, rest = uri.partition("://")
    mapped = SDK_GATEWAY_SCHEMES.get(scheme.lower()) if sep else None
    return f"{mapped}://{rest}" if mapped and rest else uri


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine's
    loopback: ``localhost``, 127.0.0.0/8 or ::1. Other names are not resolved, so never count."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
