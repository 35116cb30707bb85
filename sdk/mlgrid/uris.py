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
