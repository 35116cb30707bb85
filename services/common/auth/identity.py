"""The caller of the call being served, as the auth interceptor established it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

#: Subject prefix of mlgrid's own services calling one another (registry -> tracking, ...).
SERVICE_SUBJECT_PREFIX = "service:"


@dataclass(frozen=True)
class Identity:
    """A verified caller."""

    #: The user name (or an identity provider's subject; ``service:<name>`` for mlgrid itself).
    subject: str
    is_admin: bool = False
    #: The workspaces it belongs to, as the assertion stated them (informational: permission
    #: checks read the store's current memberships).
    workspaces: tuple[str, ...] = ()
    #: How it was established: "password", "token", "oidc", "assertion", "service", "open".
    method: str = "assertion"
    #: Its identity provider's groups that some role is given to (from its token; empty for
    #: other callers): it has those roles' grants while its tokens list the groups.
    groups: tuple[str, ...] = ()
    #: The experiment a project run's token confines it to ("" for every other caller): what
    #: such a caller may do is decided in run_tokens.py.
    scope: str = ""

    @property
    def is_service(self) -> bool:
        return self.subject.startswith(SERVICE_SUBJECT_PREFIX)


#: Who calls when auth is off: anyone may do anything, as in MLflow without its auth app.
OPEN = Identity(subject="", is_admin=True, method="open")

_current: ContextVar[Identity | None] = ContextVar("mlgrid_identity", default=None)


def current_identity() -> Identity:
    """The caller of the call this thread serves (OPEN outside calls or when auth is off)."""
    return _current.get() or OPEN


def set_identity(identity: Identity | None) -> object:
    return _current.set(identity)


def reset_identity(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
