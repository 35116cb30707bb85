"""The credential a project run's own code logs with: an access token of the user who submitted
the run, minted when the run starts and revoked when it ends.

It is an ordinary token of that user (so it grants exactly what the user has, no more, and is
refused the moment the user is removed), named after the run so that any process can revoke it
by the run id alone (a run adopted after a restart of the projects service included). Its
expiry (``MLGRID_AUTH_RUN_TOKEN_SECONDS``) only matters when nobody was left to revoke it.
The token is handed to the run through its environment only; it is never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .identity import Identity

if TYPE_CHECKING:
    from .runtime import AuthRuntime

__all__ = ["RunTokens", "run_token_name"]


def run_token_name(run_id: str) -> str:
    """The name of ``run_id``'s token, as ``mlgrid auth tokens list`` shows it."""
    return f"project run {run_id}"


class RunTokens:
    """Mints and revokes run tokens in the auth store of the process's auth runtime (asked for
    when needed, as the other services do; None: auth is off)."""

    def __init__(self, runtime: Callable[[], AuthRuntime | None] = lambda: None) -> None:
        self._runtime = runtime

    def mint(self, submitter: Identity, run_id: str) -> str:
        """A token acting as ``submitter`` for ``run_id``'s code; "" when there is nobody to act
        as (auth off, or one of mlgrid's own services submitting)."""
        runtime = self._runtime()
        if runtime is None or not submitter.subject or submitter.is_service:
            return ""
        _, token = runtime.store.create_token(
            submitter.subject, run_token_name(run_id), runtime.settings.run_token_seconds
        )
        return token

    def revoke(self, run_id: str) -> None:
        """The run has ended: its token stops working (nothing when it had none)."""
        runtime = self._runtime()
        if runtime is not None:
            runtime.store.revoke_tokens_named(run_token_name(run_id))
