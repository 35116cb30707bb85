"""The fluent API's experiment functions: MLflow's names, on the process's shared client.

``set_experiment`` sets the active experiment that mlgrid.fluent's ``start_run`` uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgrid import environment as env
from mlgrid import fluent
from mlgrid.entities import Experiment, LifecycleStage
from mlgrid.exceptions import InvalidParameterValue


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Makes an experiment the active one (creating it by name when missing) and returns it."""
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidParameterValue(
            "set_experiment needs exactly one of experiment_name or experiment_id"
        )
    client = fluent.state.client()
    if experiment_id is not None:
        experiment = client.get_experiment(str(experiment_id))
    else:
        assert experiment_name is not None
        found = client.get_experiment_by_name(experiment_name)
        if found is None:
            new_id = client.create_experiment(experiment_name)
            found = client.get_experiment(new_id)
        experiment = found
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(
            f"cannot set the deleted experiment {experiment.name!r} (id {experiment.experiment_id})"
            " as the active experiment; restore it first"
        )
    fluent.state.experiment_id = experiment.experiment_id
    # Child processes (subprocesses of the script) start their runs in the same experiment.
    env.MLGRID_EXPERIMENT_ID.set(experiment.experiment_id)
    return experiment


def create_experiment(
    name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    return fluent.state.client().create_experiment(name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    return fluent.state.client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return fluent.state.client().get_experiment_by_name(name)


def delete_experiment(experiment_id: str) -> None:
    fluent.state.client().delete_experiment(experiment_id)


def set_experiment_tag(key: str, value: Any) -> None:
    fluent.state.client().set_experiment_tag(fluent.current_experiment_id(), key, value)


def set_experiment_tags(tags: Mapping[str, Any]) -> None:
    for key, value in tags.items():
        set_experiment_tag(key, value)
