"""What a caller must hold on a model version's source when auth is on, beyond the EDIT on the
registered model that CreateModelVersion's own rule checks (access_rules.py).

The registry looks a source up, and notes a new version on its logged model (the
``mlflow.modelVersions`` tag), as mlgrid's registry service, which may do anything. These
checks make it act for the caller, as MLflow's auth does: registering needs READ on the run
(``run_id``, or the run of a ``runs:/`` source), on the logged model's experiment, and on the
registered model of a ``models:/<name>/<version>`` source; and the tag is written only for a
caller that could write it itself (EDIT on the logged model's experiment). A caller with READ
alone still registers the version (MLflow lets it), but writes nothing into an experiment it
may only read: the version is then not listed on the logged model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlgrid_services.common.auth.identity import current_identity
from mlgrid_services.common.auth.permissions import Permission, ResourceKind
from mlgrid_services.common.auth.settings import AuthSettings

from .sources import TrackingRunLookup

if TYPE_CHECKING:
    from mlgrid_services.common.auth.runtime import AuthRuntime

_ACTION = "CreateModelVersion"


def _runtime(settings: AuthSettings) -> AuthRuntime | None:
    # Imported here: the auth machinery is loaded only where auth is on.
    from mlgrid_services.common.auth.runtime import auth_runtime

    return auth_runtime(settings)


class SourceAccess:
    """The caller's permissions on a version's source (the call's identity, per call)."""

    def __init__(self, settings: AuthSettings, runs: TrackingRunLookup) -> None:
        self._settings = settings
        self._runs = runs

    def _require(self, kind: ResourceKind, resource_id: str, what: str) -> None:
        runtime = _runtime(self._settings)
        if runtime is not None:
            runtime.access.require(
                current_identity(), kind, resource_id, Permission.READ, f"{_ACTION} from {what}"
            )

    def check_run(self, run_id: str) -> None:
        """READ on the run's experiment (ResourceDoesNotExist when there is no such run)."""
        self._require(ResourceKind.EXPERIMENT, self._runs.experiment_of(run_id), f"run {run_id}")

    def check_logged_model(self, model_id: str, experiment_id: str) -> None:
        self._require(ResourceKind.EXPERIMENT, experiment_id, f"logged model {model_id}")

    def check_model_version(self, name: str, version: int) -> None:
        self._require(ResourceKind.REGISTERED_MODEL, name, f"model version {name}/{version}")

    def may_record_on(self, experiment_id: str) -> bool:
        """Whether the caller could write the logged model's tags itself."""
        runtime = _runtime(self._settings)
        if runtime is None:
            return True
        level = runtime.access.level(current_identity(), ResourceKind.EXPERIMENT, experiment_id)
        return level.allows(Permission.EDIT)


def source_access(settings: AuthSettings, runs: TrackingRunLookup) -> SourceAccess | None:
    """None when auth is off (nothing to check)."""
    return SourceAccess(settings, runs) if settings.enabled else None
