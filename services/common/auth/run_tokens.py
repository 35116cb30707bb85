"""The credential a project run's own code logs with, and what it may do.

When a run starts, the projects service mints an access token of the user who submitted it,
named after the run (so any process can revoke it by the run id alone, a run adopted after a
restart of the projects service included) and **confined to the run's experiment**: the token's
``scope`` is that experiment's id, carried by the caller's :class:`~.identity.Identity` (and the
gateway's assertion) to every service, where the permission check applies :func:`scoped_level`
and :func:`check_scoped_call`. With such a token a run may

- work in its own experiment: read it, create and update runs, log metrics, params, tags,
  artifacts and logged models there (at most EDIT, and only as far as the submitter may);
- register what it trains: create registered models and add versions, tags and aliases to
  them (at most EDIT, as far as the submitter may), since ``log_model(...,
  registered_model_name=…)`` from a project run is how MLflow users publish a model;
- read whatever the submitter may read (at most READ in other experiments: no writes there,
  nothing deleted anywhere);

and it may not create experiments, delete anything (MANAGE is never reached), act as an admin (an admin's run token is confined like anyone's), nor call
the auth service's management calls (users, tokens, roles, grants, workspaces, defaults); only
``WhoAmI`` answers it. A user removed meanwhile is refused, as with any of its tokens.

The token is revoked when the run ends however it ends; its expiry
(``MLGRID_AUTH_RUN_TOKEN_SECONDS``) only matters when nobody was left to revoke it. It reaches
the run through its environment (on Kubernetes through a Secret of the run's own), never its
command line or logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlgrid.exceptions import PermissionDenied

from .identity import Identity
from .permissions import Permission, ResourceKind

if TYPE_CHECKING:
    from .policy import Rule
    from .runtime import AuthRuntime

__all__ = ["RunTokens", "check_scoped_call", "run_token_name", "scoped_level"]

#: The most a run's token may do in its own experiment, on registered models, and on every
#: other experiment.
WITHIN_EXPERIMENT = Permission.EDIT
ON_REGISTERED_MODELS = Permission.EDIT
ELSEWHERE = Permission.READ
#: What a run's token may create (its submitter becomes the creator, as with any token).
CREATABLE = frozenset({ResourceKind.REGISTERED_MODEL})
#: The auth service's calls a run's token may make (the others manage users, tokens, grants…).
ALLOWED_MANAGEMENT_CALLS = frozenset({"WhoAmI"})


def run_token_name(run_id: str) -> str:
    """The name of ``run_id``'s token, as ``mlgrid auth tokens list`` shows it."""
    return f"project run {run_id}"


def scoped_level(
    identity: Identity, kind: ResourceKind, resource_id: str, level: Permission
) -> Permission:
    """``level`` (what the token's owner has on the resource) cut to what ``identity`` may use
    of it: unchanged for an ordinary caller."""
    if not identity.scope:
        return level
    if kind is ResourceKind.REGISTERED_MODEL:
        return min(level, ON_REGISTERED_MODELS)
    own = kind is ResourceKind.EXPERIMENT and resource_id == identity.scope
    return min(level, WITHIN_EXPERIMENT if own else ELSEWHERE)


def check_scoped_call(identity: Identity, rule: Rule, action: str) -> None:
    """Refuses the calls a run's token may not make at all, whatever its owner may do."""
    if not identity.scope:
        return
    refused = (
        (rule.anyone and action not in ALLOWED_MANAGEMENT_CALLS)
        or rule.admin
        or (rule.creates is not None and rule.kind not in CREATABLE)
    )
    if refused:
        raise PermissionDenied(
            f"{action} is not allowed with a project run's token (user "
            f"{identity.subject!r}; it may only work in experiment {identity.scope!r}, "
            "register models, and read what its user may read)"
        )


class RunTokens:
    """Mints and revokes run tokens in the auth store of the process's auth runtime (asked for
    when needed, as the other services do; None: auth is off)."""

    def __init__(self, runtime: Callable[[], AuthRuntime | None] = lambda: None) -> None:
        self._runtime = runtime

    def mint(self, submitter: Identity, run_id: str, experiment_id: str) -> str:
        """A token acting as ``submitter`` for ``run_id``'s code, confined to ``experiment_id``
        (the run's); "" when there is nobody to act as (auth off, or one of mlgrid's own
        services submitting)."""
        runtime = self._runtime()
        if runtime is None or not submitter.subject or submitter.is_service:
            return ""
        _, token = runtime.store.create_token(
            submitter.subject,
            run_token_name(run_id),
            runtime.settings.run_token_seconds,
            scope=experiment_id,
        )
        return token

    def revoke(self, run_id: str) -> None:
        """The run has ended: its token stops working (nothing when it had none)."""
        runtime = self._runtime()
        if runtime is not None:
            runtime.store.revoke_tokens_named(run_token_name(run_id))
