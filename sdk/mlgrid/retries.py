"""Which calls may be tried again after UNAVAILABLE, and how.

The contracts declare it: a method with ``option idempotency_level`` (``NO_SIDE_EFFECTS`` for
reads, ``IDEMPOTENT`` for writes that change nothing more when repeated, such as a metric point
stored once however often it is sent) may be retried on another replica of its backend. gRPC
does the retrying, configured through a channel's service config; the gateway uses it towards
its backends and the SDK on its tunnels, which are pinned to one replica until it goes away.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

#: Tries of an idempotent call: the first and two retries, with a short backoff so a replica
#: that just died costs a caller well under a second.
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def is_idempotent(method: MethodDescriptor) -> bool:
    """Whether the contract declares ``method`` safe to repeat."""
    return method.GetOptions().idempotency_level != MethodOptions.IDEMPOTENCY_UNKNOWN


def retry_method_config(paths: Iterable[str]) -> list[dict[str, Any]]:
    """The ``methodConfig`` entries retrying the methods at ``paths`` (``/Service/Method``)."""
    names = [
        {"service": path.split("/")[1], "method": path.split("/")[2]} for path in sorted(set(paths))
    ]
    return [{"name": names, "retryPolicy": RETRY_POLICY}] if names else []


def idempotent_paths(services: Iterable[ServiceDescriptor]) -> list[str]:
    """``/Service/Method`` of every idempotent method of ``services``."""
    return [
        f"/{service.full_name}/{method.name}"
        for service in services
        for method in service.methods
        if is_idempotent(method)
    ]


def retry_service_config(services: Iterable[ServiceDescriptor]) -> str:
    """A service config (JSON) retrying the idempotent methods of ``services``."""
    return json.dumps({"methodConfig": retry_method_config(idempotent_paths(services))})
