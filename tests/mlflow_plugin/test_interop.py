"""What one client writes the other reads: mlgrid's SDK and the real ``mlflow`` (through the
plugin) on the same stack, both ways."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.entities import Metric

from mlgrid import entities as mg
from mlgrid.mlflow_plugin.uris import wrap_artifact_uri

from .conftest import write_file


def test_mlflow_reads_what_the_sdk_wrote(sdk, client, unique, tmp_path):
    exp_id = sdk.create_experiment(f"sdk-{unique}", tags={"owner": "sdk"})
    run = sdk.create_run(exp_id, run_name="from-sdk", tags={"t": "1"})
    run_id = run.info.run_id
    sdk.log_batch(
        run_id,
        metrics=[mg.Metric("loss", 0.5, 1000, 0), mg.Metric("loss", 0.25, 2000, 1)],
        params=[mg.Param("lr", "0.01")],
        synchronous=True,
    )
    sdk.log_artifact(run_id, write_file(tmp_path / "weights.txt", "w=1"), "ckpt")
    sdk.set_terminated(run_id)

    exp = client.get_experiment_by_name(f"sdk-{unique}")
    assert (exp.experiment_id, exp.tags) == (exp_id, {"owner": "sdk"})
    seen = client.get_run(run_id)
    assert seen.info.run_name == "from-sdk"
    assert seen.info.status == "FINISHED"
    assert seen.data.params == {"lr": "0.01"}
    assert seen.data.metrics == {"loss": 0.25}
    assert seen.data.tags["t"] == "1"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (0, 0.5),
        (1, 0.25),
    ]
    assert [a.path for a in client.list_artifacts(run_id)] == ["ckpt"]
    local = client.download_artifacts(run_id, "ckpt/weights.txt", str(tmp_path / "out"))
    assert Path(local).read_text() == "w=1"


def test_the_sdk_reads_what_mlflow_wrote(sdk, experiment_id, unique, tmp_path):
    with mlflow.start_run(run_name="from-mlflow") as run:
        mlflow.log_param("alpha", 0.3)
        mlflow.log_metric("acc", 0.9, step=4)
        mlflow.set_tag("origin", "mlflow")
        mlflow.log_artifact(str(write_file(tmp_path / "report.md", "# report")), "docs")
    run_id = run.info.run_id

    seen = sdk.get_run(run_id)
    assert seen.info.run_name == "from-mlflow"
    assert seen.info.status == "FINISHED"
    assert seen.data.params == {"alpha": "0.3"}
    assert seen.data.metrics == {"acc": 0.9}
    assert seen.data.tags["origin"] == "mlflow"
    # mlgrid stores its own storage URI; MLflow was shown the same location, wrapped.
    assert not seen.info.artifact_uri.startswith("mlgrid-artifacts")
    assert run.info.artifact_uri == wrap_artifact_uri(client_gateway(), seen.info.artifact_uri)
    assert sdk.read_artifact_at(seen.info.artifact_uri, "docs/report.md") == b"# report"


def client_gateway():
    from mlgrid.mlflow_plugin.uris import parse_store_uri

    return parse_store_uri(mlflow.get_tracking_uri())


def test_an_experiment_location_given_to_mlflow_is_stored_unwrapped(
    client, sdk, unique, plugin_stack
):
    storage = f"{plugin_stack.artifact_root}/custom-{unique}"
    wrapped = wrap_artifact_uri(client_gateway(), storage)
    exp_id = client.create_experiment(f"located-{unique}", artifact_location=wrapped)
    assert sdk.get_experiment(exp_id).artifact_location == storage
    assert client.get_experiment(exp_id).artifact_location == wrapped


def test_registry_entries_are_shared_and_sources_stay_mlgrids_own(sdk, client, unique):
    run = sdk.create_run(sdk.create_experiment(f"reg-{unique}"))
    storage_source = f"{run.info.artifact_uri}/model"
    sdk.log_text(run.info.run_id, "flavors: {}\n", "model/MLmodel")  # a source holds files
    sdk.create_registered_model(f"sdk-model-{unique}", tags={"by": "sdk"})
    sdk.create_model_version(f"sdk-model-{unique}", storage_source, run_id=run.info.run_id)
    sdk.set_registered_model_alias(f"sdk-model-{unique}", "prod", "1")

    model = client.get_registered_model(f"sdk-model-{unique}")
    assert model.tags == {"by": "sdk"}
    assert model.aliases == {"prod": "1"}
    version = client.get_model_version_by_alias(f"sdk-model-{unique}", "prod")
    assert version.source == wrap_artifact_uri(client_gateway(), storage_source)

    # and the other way: MLflow registers a wrapped source, mlgrid stores its own URI
    client.create_registered_model(f"mlflow-model-{unique}")
    client.create_model_version(f"mlflow-model-{unique}", version.source, run.info.run_id)
    assert sdk.get_model_version(f"mlflow-model-{unique}", "1").source == storage_source


def test_metrics_logged_in_a_batch_by_mlflow_keep_their_timestamps_and_steps(
    client, sdk, experiment_id
):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("m", float(i), 100 + i, i * 10) for i in range(5)])
    history = sdk.get_metric_history(run_id, "m")
    assert [(m.value, m.timestamp, m.step) for m in history] == [
        (float(i), 100 + i, i * 10) for i in range(5)
    ]
