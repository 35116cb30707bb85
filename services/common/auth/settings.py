"""The auth settings of a process (from MLGRID_AUTH_* and the command line), and the rule that
a server reachable from elsewhere does not start open by accident. Plain data: the machinery is
in runtime.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.uris import is_loopback_host

from .permissions import Permission, parse_permission

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthSettings:
    """Whether calls are authenticated and checked, and against what."""

    #: Authenticate every call and check permissions (MLGRID_AUTH).
    enabled: bool = False
    #: Shared secret signing identity assertions; every process of a deployment has the same.
    secret: str = ""
    #: Database of users and grants; the tracking store's when empty.
    store_uri: str = ""
    #: Admin created at start when missing (MLGRID_AUTH_ADMIN_USERNAME / _PASSWORD).
    admin_username: str = ""
    admin_password: str = ""
    #: Default permission stored at first start.
    default_permission: Permission = Permission.READ
    #: Seconds verified credentials and a caller's grants are reused.
    cache_seconds: float = 2.0
    #: Longest life of the access token a project run gets (it is revoked when the run ends;
    #: the expiry only matters when the projects service died meanwhile).
    run_token_seconds: int = 7 * 24 * 3600

    @classmethod
    def from_env(cls, store_uri: str = "") -> AuthSettings:
        default = env.MLGRID_AUTH_DEFAULT_PERMISSION.get()
        return cls(
            enabled=env.MLGRID_AUTH.get(),
            secret=env.MLGRID_AUTH_SECRET.get() or "",
            store_uri=env.MLGRID_AUTH_STORE_URI.get() or store_uri,
            admin_username=env.MLGRID_AUTH_ADMIN_USERNAME.get() or "",
            admin_password=env.MLGRID_AUTH_ADMIN_PASSWORD.get() or "",
            default_permission=(
                parse_permission(default, "MLGRID_AUTH_DEFAULT_PERMISSION")
                if default
                else Permission.READ
            ),
            cache_seconds=env.MLGRID_AUTH_CACHE_SECONDS.get(),
            run_token_seconds=env.MLGRID_AUTH_RUN_TOKEN_SECONDS.get(),
        )

    def check(self) -> None:
        """Refuses settings that cannot work, naming what to set."""
        if not self.enabled:
            return
        if len(self.secret) < 16:
            raise InvalidParameterValue(
                "auth is on (MLGRID_AUTH=true) but MLGRID_AUTH_SECRET is unset or shorter than 16 "
                "characters: set the same long random secret for the gateway and every service"
            )
        if not self.store_uri:
            raise InvalidParameterValue(
                "auth is on but no auth store is set (MLGRID_AUTH_STORE_URI)"
            )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts local connections (unix sockets count)."""
    return host.startswith("unix:") or is_loopback_host(host)


def check_exposure(what: str, host: str, settings: AuthSettings, allow_open: bool) -> None:
    """A server bound beyond loopback refuses to start without auth unless told it may; on
    loopback it says that it is open."""
    if settings.enabled:
        log.info("%s: authentication and permission checks are on", what)
        return
    if is_loopback(host):
        log.warning(
            "%s is open: no authentication (bound to %s, loopback only; MLGRID_AUTH=true "
            "turns it on)",
            what,
            host,
        )
        return
    if not allow_open:
        raise InvalidParameterValue(
            f"{what} would listen on {host} without authentication: turn auth on "
            "(MLGRID_AUTH=true with MLGRID_AUTH_SECRET, docs/auth.md) or pass --allow-open "
            "(MLGRID_ALLOW_OPEN=true) to serve it open on purpose"
        )
    log.warning(
        "%s is OPEN on %s: anyone who reaches it can read and change everything", what, host
    )
