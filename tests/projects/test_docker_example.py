"""The multistep example's docker variant: every step in a container on the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgrid import projects
from mlgrid.client import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multistep"


def test_the_multistep_workflow_runs_each_step_in_a_container(
    container_engine, grpc_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_URI", grpc_stack.tracking_uri)
    driver = projects.run(
        str(EXAMPLE),
        parameters={"rows": 120, "backend": "docker", "image": container_engine.python_image},
        experiment_name="multistep-docker",
    )
    client = Client(grpc_stack.tracking_uri)
    run = client.get_run(driver.run_id)
    assert run.info.status == "FINISHED"
    steps = [client.get_run(run.data.tags[f"step.{n}"]) for n in ("prepare", "train", "evaluate")]
    assert [s.info.status for s in steps] == ["FINISHED"] * 3
    assert [s.data.tags["mlflow.project.backend"] for s in steps] == ["docker"] * 3
    images = {s.data.tags["mlflow.docker.image.uri"] for s in steps}
    assert len(images) == 1  # one image, built once, for every step
    assert images.pop().startswith("mlgrid-project-multistep-linear:")
    assert steps[0].data.metrics["rows"] == 120
    assert 0.05 < run.data.metrics["rmse"] == steps[2].data.metrics["rmse"] < 0.2
