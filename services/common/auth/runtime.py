"""The one :class:`AuthRuntime` per process: the store, the signer, the authenticator and the
permission caches every service of the process (and the gateway) shares."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from mlgrid.exceptions import ResourceAlreadyExists

from .assertion import AssertionSigner
from .authenticator import Authenticator, JwtVerifier
from .settings import AuthSettings

if TYPE_CHECKING:
    from .access import AccessControl
    from .store import AuthStore

log = logging.getLogger(__name__)


class AuthRuntime:
    """The auth machinery of one process."""

    def __init__(self, settings: AuthSettings, jwt_verifier: JwtVerifier | None = None) -> None:
        # Imported here: every service imports this module, and the store brings SQLAlchemy
        # and the auth schema (~20 ms of a process's start), needed only when auth is on.
        from .access import AccessControl
        from .store import AuthStore

        settings.check()
        self.settings = settings
        self.store: AuthStore = AuthStore(settings.store_uri)
        self.signer = AssertionSigner(settings.secret)
        self.authenticator = Authenticator(
            self.store,
            self.signer,
            cache_seconds=settings.cache_seconds,
            jwt_verifier=jwt_verifier,
        )
        self.access: AccessControl = AccessControl(self.store, settings.cache_seconds)
        self.store.ensure_default(settings.default_permission)
        admin = settings.admin_username
        if admin and settings.admin_password and self.store.password_record(admin) is None:
            try:
                self.store.create_user(admin, settings.admin_password, is_admin=True)
                log.info("created admin user %r", admin)
            except ResourceAlreadyExists:  # another process of the stack created it first
                pass

    def changed(self) -> None:
        """Something was granted, revoked or removed through this process: forget caches."""
        self.access.invalidate()
        self.authenticator.invalidate()

    def close(self) -> None:
        self.store.close()


_runtimes: dict[AuthSettings, AuthRuntime] = {}
_runtimes_lock = threading.Lock()


def auth_runtime(settings: AuthSettings) -> AuthRuntime | None:
    """The process's runtime for ``settings`` (None when auth is off): the services of one
    process share it, so one pool and one set of caches serve them all."""
    if not settings.enabled:
        return None
    with _runtimes_lock:
        runtime = _runtimes.get(settings)
        if runtime is None:
            runtime = _runtimes[settings] = AuthRuntime(settings, load_jwt_verifier())
        return runtime


def release_runtime(settings: AuthSettings) -> None:
    with _runtimes_lock:
        runtime = _runtimes.pop(settings, None)
    if runtime is not None:
        runtime.close()


def load_jwt_verifier() -> JwtVerifier | None:
    """The OIDC verifier when an identity provider is configured (services/gateway/oidc.py,
    optional: without it only Basic and mlgrid tokens are accepted)."""
    from mlgrid_services.gateway.oidc import OidcVerifier

    return OidcVerifier.from_env()
