"""Which artifact locations clients may name, for every scheme: one allowlist, checked where a
location enters (experiment create, model-version source) and where it is used (every artifacts
call).

Without it a client could point the service, with the service's own rights and credentials, at
any directory (``file:///etc``), any bucket (``s3://someone-else``), or any path a plugin's
repository maps to local files (``file-plugin:///etc`` served ``/etc/shadow``).

The allowlist is the deployment's default artifact root plus ``MLGRID_ARTIFACTS_ALLOWED_ROOTS``
(comma-separated): each entry is a root URI of any scheme (``file:///data``, ``/data``,
``s3://bucket/prefix``, ``file-plugin:///srv/x``), or ``<scheme>:*`` for every location of a
scheme, or ``*`` for everything. A location is allowed when it lies inside an allowed root: same
scheme and host (bucket), and below its path, with symlinks resolved for local files. A plugin
repository that stores files locally is also held to the local roots: the file it maps to must
lie inside an allowed ``file`` root, or inside an allowed root of the plugin's own scheme.

Embedded mode (the SDK's private in-process stack) has no allowlist: its only client is the
process that owns the files, and MLflow users expect to put artifacts anywhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from mlgrid.environment import MLGRID_ARTIFACTS_ALLOWED_ROOTS
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.request_limits import shown

from .config import ServiceConfig
from .paths import ParsedUri, check_uri, is_inside

#: The setting that lists the extra allowed roots (named in every refusal).
ALLOWED_ROOTS_SETTING = "MLGRID_ARTIFACTS_ALLOWED_ROOTS"


@dataclass(frozen=True)
class LocationPolicy:
    """The allowed roots (None: any location is allowed)."""

    roots: tuple[ParsedUri, ...] | None
    #: Schemes allowed everywhere (``<scheme>:*`` entries).
    open_schemes: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, default_root: str, entries: list[str]) -> LocationPolicy:
        """The policy of a deployment: its default root plus the setting's entries."""
        if "*" in entries:
            return cls(None)
        open_schemes = frozenset(
            e[: -len(":*")].lower() for e in entries if e.endswith(":*") and "/" not in e
        )
        roots = [e for e in [default_root, *entries] if e and not e.endswith(":*")]
        return cls(tuple(check_uri(r, "allowed root") for r in roots), open_schemes)

    @classmethod
    def unrestricted(cls) -> LocationPolicy:
        return cls(None)

    def with_root(self, root: str) -> LocationPolicy:
        """This policy plus ``root`` (a plugin store's own default artifact root)."""
        if self.roots is None or not root:
            return self
        return LocationPolicy((*self.roots, check_uri(root, "allowed root")), self.open_schemes)

    def allows(self, location: ParsedUri) -> bool:
        if self.roots is None or location.scheme in self.open_schemes:
            return True
        return any(is_inside(location, root) for root in self.roots)

    def check(self, uri: str, field: str) -> ParsedUri:
        """The parsed ``uri``; InvalidParameterValue naming the setting when it is not allowed."""
        parsed = check_uri(uri, field)
        if not self.allows(parsed):
            raise InvalidParameterValue(
                f"{field} {shown(uri)} is not allowed: it lies outside the artifact locations "
                f"this deployment allows. Use a location inside the default artifact root, or "
                f"have the operator add it (or '{parsed.scheme}:*') to {ALLOWED_ROOTS_SETTING}"
            )
        return parsed

    def check_local_mapping(self, uri: str, local: Path, field: str) -> None:
        """For a repository that keeps ``uri``'s files at ``local``: the local directory must be
        allowed too (as a ``file`` root), unless ``uri`` itself is inside an allowed root of its
        own scheme other than through ``<scheme>:*``."""
        if self.roots is None:
            return
        parsed = check_uri(uri, field)
        if any(is_inside(parsed, root) for root in self.roots):
            return
        as_file = ParsedUri(scheme="file", netloc="", path=str(local))
        if not any(root.is_local and is_inside(as_file, root) for root in self.roots):
            raise InvalidParameterValue(
                f"{field} {shown(uri)} is not allowed: its repository keeps files in a local "
                f"directory outside the allowed roots; have the operator add the location to "
                f"{ALLOWED_ROOTS_SETTING}"
            )


class DeploymentPolicy:
    """The policy of one service process: its default artifact root plus the setting, read when
    used (a changed setting applies without a restart; parsed once per value)."""

    def __init__(self, default_root: str, *, unrestricted: bool = False) -> None:
        self.default_root = default_root
        self.unrestricted = unrestricted
        self._lock = threading.Lock()
        self._parsed: tuple[str, LocationPolicy] | None = None

    def current(self) -> LocationPolicy:
        if self.unrestricted:
            return LocationPolicy.unrestricted()
        raw = MLGRID_ARTIFACTS_ALLOWED_ROOTS.get() or ""
        with self._lock:
            if self._parsed is not None and self._parsed[0] == raw:
                return self._parsed[1]
        entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
        policy = LocationPolicy.from_entries(self.default_root, entries)
        with self._lock:
            self._parsed = (raw, policy)
        return policy

    def check(self, uri: str, field: str) -> ParsedUri:
        return self.current().check(uri, field)


def policy_for(config: ServiceConfig) -> DeploymentPolicy:
    """The artifact-location policy of a service built from ``config``: none in embedded mode
    (a private unix socket: its only client owns the files anyway)."""
    embedded = (config.gateway_target or "").startswith("unix:")
    return DeploymentPolicy(config.effective_artifact_root, unrestricted=embedded)
