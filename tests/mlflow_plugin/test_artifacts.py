"""Artifacts through the plugin: MLflow's client stores and reads the bytes of runs whose roots
are on the server (a ``file://`` root the client cannot reach), through mlgrid's artifacts
service; and the media and dataset helpers that build on them."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from mlgrid.mlflow_plugin.uris import unwrap_artifact_uri

from .conftest import write_file


def test_runs_get_wrapped_uris_below_their_experiments_location(
    client, experiment_id, plugin_stack
):
    location = client.get_experiment(experiment_id).artifact_location
    run = client.create_run(experiment_id)
    assert location.startswith(f"mlgrid-artifacts://{plugin_stack.target}/file:///")
    assert run.info.artifact_uri == f"{location}/{run.info.run_id}/artifacts"
    # The wrapped URI names the server's own root, which this test can see on disk.
    assert unwrap_artifact_uri(location).startswith(plugin_stack.artifact_root)


def test_log_list_and_download_files_and_directories(client, experiment_id, tmp_path):
    run_id = client.create_run(experiment_id).info.run_id
    src = tmp_path / "src"
    my_file = write_file(src / "my.file", "Hello, World!")
    client.log_artifact(run_id, str(my_file))
    client.log_artifacts(run_id, str(src), "dir")

    assert {a.path for a in client.list_artifacts(run_id)} == {"my.file", "dir"}
    [listed] = client.list_artifacts(run_id, "dir")
    assert (listed.path, listed.is_dir, listed.file_size) == ("dir/my.file", False, 13)

    everything = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=".")
    assert Path(everything, "my.file").read_text() == "Hello, World!"
    assert Path(everything, "dir", "my.file").read_text() == "Hello, World!"
    only_dir = client.download_artifacts(run_id, "dir", str(tmp_path / "out"))
    assert Path(only_dir) == tmp_path / "out" / "dir"
    assert Path(only_dir, "my.file").read_text() == "Hello, World!"


def test_download_by_artifact_uri_and_runs_uri(client, experiment_id, tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_text("line\n", "notes/readme.txt")
    uri = f"{run.info.artifact_uri}/notes/readme.txt"
    by_uri = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "a"))
    assert Path(by_uri).read_text() == "line\n"
    by_runs_uri = mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/notes", dst_path=str(tmp_path / "b")
    )
    assert Path(by_runs_uri, "readme.txt").read_text() == "line\n"
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/readme.txt") == "line\n"


def test_the_artifacts_service_refuses_paths_that_climb_out(client, experiment_id):
    run = client.create_run(experiment_id)
    repo = get_artifact_repository(run.info.artifact_uri)
    with pytest.raises(MlflowException) as excinfo:
        repo.list_artifacts("../../..")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_artifacts_removes_a_subtree(client, experiment_id, tmp_path):
    run = client.create_run(experiment_id)
    client.log_artifacts(
        run.info.run_id, str(write_file(tmp_path / "d" / "x.txt", "x").parent), "d"
    )
    client.log_text(run.info.run_id, "keep", "keep.txt")
    get_artifact_repository(run.info.artifact_uri).delete_artifacts("d")
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["keep.txt"]


def test_log_dict_text_figure_image_and_table(experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_dict({"k": [1, 2]}, "config.json")
        mlflow.log_dict({"k": "v"}, "config.yaml")
        mlflow.log_text("hello", "hello.txt")
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        mlflow.log_figure(fig, "plots/line.png")
        plt.close(fig)
        mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "images/black.png")
        table = {"inputs": ["a", "b"], "outputs": [1, 2]}
        mlflow.log_table(table, "eval/table.json")
    run_id = run.info.run_id
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"k": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml") == "k: v\n"
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/hello.txt") == "hello"
    png = mlflow.artifacts.load_image(f"runs:/{run_id}/plots/line.png")
    assert png.size[0] > 0
    assert mlflow.artifacts.load_image(f"runs:/{run_id}/images/black.png").size == (4, 4)
    loaded = mlflow.load_table("eval/table.json", run_ids=[run_id])
    assert list(loaded["inputs"]) == ["a", "b"]
    assert list(loaded["outputs"]) == [1, 2]
    # log_table also records the table in the run's tags, as MLflow does.
    assert "eval/table.json" in mlflow.get_run(run_id).data.tags["mlflow.loggedArtifacts"]


def test_log_input_with_an_mlflow_data_dataset(experiment_id, tmp_path):
    frame = pd.DataFrame([[1, 2, 3], [1, 2, 3]], columns=["a", "b", "c"])
    path = tmp_path / "temp.csv"
    frame.to_csv(path)
    dataset = mlflow.data.from_pandas(frame, source=str(path), name="train-set")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="train", tags={"foo": "baz"})
    [used] = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert used.dataset.name == "train-set"
    assert used.dataset.digest == dataset.digest
    assert used.dataset.source_type == "local"
    assert json.loads(used.dataset.source) == {"uri": str(path)}
    assert [c["name"] for c in json.loads(used.dataset.schema)["mlflow_colspec"]] == ["a", "b", "c"]
    assert json.loads(used.dataset.profile) == {"num_rows": 2, "num_elements": 6}
    assert {(t.key, t.value) for t in used.tags} == {
        ("foo", "baz"),
        (MLFLOW_DATASET_CONTEXT, "train"),
    }
    # searches return the inputs too, and the dataset is searchable by name
    [found] = mlflow.search_runs(filter_string="dataset.name = 'train-set'", output_format="list")
    assert found.info.run_id == run.info.run_id
    assert found.inputs.dataset_inputs[0].dataset.digest == dataset.digest
