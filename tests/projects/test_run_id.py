"""``run_id``: a project run executed in an existing run (MLflow's argument, honoured by every
backend; MLflow only honoured it for ``local``, mlflow/mlflow#4095)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlgrid import projects
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue

from .helpers import write
from .test_runs import stack_uri  # noqa: F401 (fixture)


def logging_project(directory: Path) -> Path:
    return write(
        directory,
        {
            "MLproject": f"""
                name: resumed
                entry_points:
                  main:
                    parameters: {{alpha: {{type: float, default: 0.5}}}}
                    command: "{sys.executable} log.py {{alpha}}"
            """,
            "log.py": """
                import sys
                import mlgrid
                with mlgrid.start_run() as run:
                    mlgrid.log_metric("alpha", float(sys.argv[1]))
                    print("in", run.info.run_id)
            """,
        },
    )


def test_the_project_runs_in_the_requested_run(stack_uri: str, tmp_path: Path) -> None:  # noqa: F811
    client = Client(stack_uri)
    experiment = client.create_experiment("requested-run")
    mine = client.create_run(experiment)
    submitted = projects.run(
        str(logging_project(tmp_path / "p")),
        parameters={"alpha": "0.7"},
        env_manager="local",
        run_id=mine.info.run_id,
    )
    assert submitted.run_id == mine.info.run_id
    run = client.get_run(mine.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"alpha": 0.7}
    assert run.data.params == {"alpha": "0.7"}
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert len(client.search_runs([experiment])) == 1  # no second run


@pytest.mark.parametrize("problem", ["ended", "deleted", "other experiment"])
def test_a_requested_run_that_cannot_be_used_is_refused_naming_run_id(
    stack_uri: str,  # noqa: F811
    tmp_path: Path,
    problem: str,
) -> None:
    client = Client(stack_uri)
    experiment = client.create_experiment(f"requested-{problem.replace(' ', '-')}")
    run = client.create_run(experiment)
    kwargs = {}
    if problem == "ended":
        client.set_terminated(run.info.run_id, "FINISHED")
    elif problem == "deleted":
        client.delete_run(run.info.run_id)
    else:
        kwargs["experiment_id"] = client.create_experiment("elsewhere-" + problem[:5])
    with pytest.raises(InvalidParameterValue) as caught:
        projects.run(
            str(logging_project(tmp_path / "p")),
            env_manager="local",
            run_id=run.info.run_id,
            **kwargs,
        )
    assert f"run_id {run.info.run_id!r}" in caught.value.message
    assert client.get_run(run.info.run_id).data.metrics == {}
