"""Which project sources a client may name: the projects service fetches, clones and copies
with its own rights, so a client's URI is held to a policy before anything is fetched.

- Server-local sources (paths, ``file://`` URIs, local git repositories) are refused unless
  ``MLGRID_PROJECTS_ALLOW_LOCAL_PATHS`` is true: a client once had the service copy ``~/``.
  ``mlgrid up`` and embedded mode turn it on (their only clients run on the same machine, as the
  same user); a deployment leaves it off.
- Remote git and zip sources must name a host in ``MLGRID_PROJECTS_ALLOWED_HOSTS``
  (comma-separated names, ``*.example.com`` for subdomains, ``*`` for any).
- Whatever the host, none of its addresses may be loopback, link-local (``169.254.169.254``, the
  cloud metadata service), private or otherwise internal unless
  ``MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES`` is true.
- A project larger than ``MLGRID_PROJECTS_MAX_SOURCE_BYTES`` is refused while it is fetched
  (the download, clone or copy stops there) and the partial copy removed.

Every refusal is INVALID_ARGUMENT naming the setting to change.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlgrid.environment import (
    MLGRID_PROJECTS_ALLOW_LOCAL_PATHS,
    MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES,
    MLGRID_PROJECTS_ALLOWED_HOSTS,
    MLGRID_PROJECTS_MAX_SOURCE_BYTES,
)
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.request_limits import shown

_SCP_LIKE = re.compile(r"^(?:[\w.+-]+@)?(?P<host>[\w.-]+):(?!//)")
_REMOTE_SCHEMES = frozenset({"https", "http", "ssh", "git", "git+ssh", "git+https"})


@dataclass(frozen=True)
class SourcePolicy:
    allow_local: bool
    allowed_hosts: tuple[str, ...]
    allow_private_addresses: bool
    max_source_bytes: int

    @classmethod
    def from_env(cls) -> SourcePolicy:
        hosts = MLGRID_PROJECTS_ALLOWED_HOSTS.get() or ""
        return cls(
            allow_local=MLGRID_PROJECTS_ALLOW_LOCAL_PATHS.get(),
            allowed_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
            allow_private_addresses=MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES.get(),
            max_source_bytes=MLGRID_PROJECTS_MAX_SOURCE_BYTES.get(),
        )

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        for allowed in self.allowed_hosts:
            if allowed == "*" or allowed == host:
                return True
            if allowed.startswith("*.") and host.endswith(allowed[1:]):
                return True
        return False


def remote_host(uri: str) -> str | None:
    """The host a project URI would be fetched from; None for a server-local source."""
    base = uri.partition("#")[0].strip()
    parts = urlsplit(base)
    if parts.scheme.lower() in _REMOTE_SCHEMES:
        return parts.hostname or ""
    if parts.scheme.lower() == "file" or not parts.scheme or len(parts.scheme) == 1:
        match = _SCP_LIKE.match(base)
        if match and not base.startswith("/") and not base.startswith("."):
            return match["host"]
        return None
    raise InvalidParameterValue(
        f"project URI {shown(uri)} has scheme {parts.scheme!r}; use https://, ssh://, git://, "
        "user@host:path, a .zip URL, or (where allowed) a local path"
    )


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def check_project_source(uri: str, policy: SourcePolicy | None = None) -> None:
    """Refuses ``uri`` (INVALID_ARGUMENT naming the setting) when the policy does not allow it."""
    policy = policy or SourcePolicy.from_env()
    host = remote_host(uri)
    if host is None:
        if not policy.allow_local:
            raise InvalidParameterValue(
                f"project URI {shown(uri)} names a path on the server, which this deployment "
                "does not allow; use a git or zip URL, or have the operator set "
                "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS=true"
            )
        return
    if not policy.host_allowed(host):
        raise InvalidParameterValue(
            f"project URI {shown(uri)} names host {shown(host, 80)}, which is not in "
            "MLGRID_PROJECTS_ALLOWED_HOSTS; use an allowed host or have the operator add it"
        )
    if policy.allow_private_addresses:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        raise InvalidParameterValue(
            f"project URI {shown(uri)}: host {shown(host, 80)} does not resolve"
        ) from None
    if any(_internal(str(a)) for a in addresses):
        raise InvalidParameterValue(
            f"project URI {shown(uri)}: host {shown(host, 80)} resolves to a loopback, "
            "link-local or private address, which this deployment does not fetch from; have the "
            "operator set MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES=true if it should"
        )


def source_too_large(uri: str, policy: SourcePolicy) -> InvalidParameterValue:
    """The error for a project whose fetch passed ``MLGRID_PROJECTS_MAX_SOURCE_BYTES`` (the
    fetch stops there: ``fetch_project(max_bytes=…)``)."""
    return InvalidParameterValue(
        f"project {shown(uri)} is larger than MLGRID_PROJECTS_MAX_SOURCE_BYTES "
        f"({policy.max_source_bytes} bytes); its fetch was stopped there. Make it smaller or "
        "have the operator raise the limit"
    )
