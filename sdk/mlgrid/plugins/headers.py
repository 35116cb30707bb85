"""Request header providers: plugins that add headers (gRPC metadata) to every SDK call.

A provider subclasses :class:`RequestHeaderProvider` and is registered under the entry-point
group ``mlgrid.request_header_provider`` (the entry-point name is unused). Before each call the
SDK asks every provider whose ``in_context()`` is true for its ``request_headers()`` and sends
them as gRPC metadata, through the gateway, to the service that handles the call.

gRPC metadata keys are lower-case ASCII; keys are lower-cased here, and keys gRPC or mlgrid
reserve for themselves (``grpc-…``, ``:…``, ``mlgrid-internal-…``) are dropped with a warning,
as are binary (``-bin``) keys and values that are not printable ASCII text. A provider that fails to load or raises is reported (a warning naming it and the
error) and skipped: a broken plugin must not stop a training job from logging.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod

from mlgrid.plugins.registry import ProviderRegistry
from mlgrid.protocol import RESERVED_METADATA_PREFIXES

__all__ = [
    "ENTRY_POINT_GROUP",
    "RequestHeaderProvider",
    "RequestHeaderProviderRegistry",
    "get_request_header_registry",
    "request_header_metadata",
    "resolve_request_headers",
]

ENTRY_POINT_GROUP = "mlgrid.request_header_provider"

_KEY = re.compile(r"^[0-9a-z_.\-]+$")


class RequestHeaderProvider(ABC):
    """Adds headers to the SDK's requests when it applies to the current process."""

    @abstractmethod
    def in_context(self) -> bool:
        """Whether this provider has headers for the current process."""

    @abstractmethod
    def request_headers(self) -> dict[str, str]:
        """Headers for the next request (called per request, so values may change)."""


def _problem(key: str, value: object) -> str | None:
    """Why ``key: value`` cannot be sent as gRPC metadata (None when it can)."""
    if not _KEY.match(key):
        return "keys may only hold lower-case letters, digits, '-', '_' and '.'"
    if key.startswith(RESERVED_METADATA_PREFIXES):
        return f"keys starting with {', '.join(repr(p) for p in RESERVED_METADATA_PREFIXES)} are reserved"
    if key.endswith("-bin"):
        return "binary ('-bin') headers are not supported; send printable text"
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        return "values must be printable ASCII text"
    return None


class RequestHeaderProviderRegistry(ProviderRegistry[RequestHeaderProvider]):
    """The installed providers (loaded on first use) and the merge of their headers."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP, "request header provider")

    def headers(self) -> dict[str, str]:
        """Headers of every provider in context; later providers win on the same key."""
        merged: dict[str, str] = {}
        for provider in self.providers:
            name = type(provider).__name__
            try:
                if not provider.in_context():
                    continue
                headers = provider.request_headers()
            except Exception as exc:
                warnings.warn(
                    f"request header provider {name} failed: {type(exc).__name__}: {exc}; "
                    "its headers are skipped",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            for raw_key, value in headers.items():
                key = str(raw_key).lower()
                problem = _problem(key, value)
                if problem is not None:
                    warnings.warn(
                        f"request header provider {name}: header {raw_key!r} is not sent: "
                        f"{problem}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                merged[key] = value
        return merged


_registry = RequestHeaderProviderRegistry()


def get_request_header_registry() -> RequestHeaderProviderRegistry:
    return _registry


def resolve_request_headers() -> dict[str, str]:
    """The headers the installed providers want on the next request."""
    return _registry.headers()


def request_header_metadata() -> list[tuple[str, str]]:
    """The providers' headers as gRPC metadata (a ``Transport.metadata_providers`` entry)."""
    return list(_registry.headers().items())
