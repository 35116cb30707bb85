"""The multistep example (examples/multistep) runs end to end against the stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgrid import projects
from mlgrid.client import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multistep"


def test_multistep_workflow_passes_artifacts_between_steps(
    grpc_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_URI", grpc_stack.tracking_uri)
    driver = projects.run(str(EXAMPLE), parameters={"rows": 120}, experiment_name="multistep")
    client = Client(grpc_stack.tracking_uri)
    run = client.get_run(driver.run_id)
    assert run.info.status == "FINISHED"
    steps = {name: run.data.tags[f"step.{name}"] for name in ("prepare", "train", "evaluate")}
    prepare, train, evaluate = (client.get_run(steps[n]) for n in ("prepare", "train", "evaluate"))
    assert all(r.info.status == "FINISHED" for r in (prepare, train, evaluate))
    assert all(r.info.experiment_id == run.info.experiment_id for r in (prepare, train, evaluate))
    assert prepare.data.metrics["rows"] == 120
    # Each later step got the earlier outputs as path parameters (runs:/ URIs, downloaded).
    assert train.data.params["data"] == f"runs:/{steps['prepare']}/data/dataset.csv"
    assert evaluate.data.params["model"] == f"runs:/{steps['train']}/model/model.json"
    assert [f.path for f in client.list_artifacts(steps["train"], "model")] == ["model/model.json"]
    # y = 3x + 2 with noise 0.1: a fitted model scores close to the noise level.
    assert 0.05 < run.data.metrics["rmse"] == evaluate.data.metrics["rmse"] < 0.2
