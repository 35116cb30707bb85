"""The SDK's artifact functions end to end: Client methods, mlgrid.artifacts, the fluent API,
through the gateway of a real stack (``grpc_stack``) and embedded."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

import mlgrid
import mlgrid.artifacts
from mlgrid.artifacts import fluent as artifacts_fluent
from mlgrid.artifacts.repository import FileInfo
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .conftest import make_file, sha256_of, tree_of

MiB = 1024 * 1024


@pytest.fixture
def client(grpc_stack) -> Client:
    return Client(grpc_stack.tracking_uri)


@pytest.fixture
def run_id(client: Client) -> str:
    experiment_id = client.create_experiment(f"artifacts-{uuid.uuid4().hex[:8]}")
    return client.create_run(experiment_id).info.run_id


@pytest.fixture
def fluent_stack(grpc_stack, monkeypatch: pytest.MonkeyPatch):
    """The fluent API pointed at the stack, with no run left active afterwards."""
    mlgrid.set_tracking_uri(grpc_stack.tracking_uri)
    yield grpc_stack
    while mlgrid.active_run():
        mlgrid.end_run()
    mlgrid.set_tracking_uri(None)


def test_client_logs_lists_and_downloads_files_and_trees(
    client: Client, run_id: str, tmp_path: Path
) -> None:
    single = tmp_path / "metrics.csv"
    single.write_text("a,b\n1,2\n")
    tree = tmp_path / "model"
    for index, relative in enumerate(["MLmodel", "data/weights.bin", "data/extra/cfg.json"]):
        make_file(tree / relative, 10_000 + index, index)
    client.log_artifact(run_id, single)
    client.log_artifacts(run_id, tree, "model")
    client.log_artifact(run_id, single, "copies/")
    assert client.list_artifacts(run_id) == [
        FileInfo("copies", True, None),
        FileInfo("metrics.csv", False, single.stat().st_size),
        FileInfo("model", True, None),
    ]
    assert [f.path for f in client.list_artifacts(run_id, "model/data")] == [
        "model/data/extra",
        "model/data/weights.bin",
    ]
    local = client.download_artifacts(run_id, "model", str(tmp_path / "dl"))
    assert Path(local) == tmp_path / "dl" / "model"
    assert tree_of(Path(local)) == tree_of(tree)
    one = client.download_artifacts(run_id, "copies/metrics.csv", str(tmp_path / "dl2"))
    assert Path(one).read_text() == "a,b\n1,2\n"


def test_a_large_file_round_trips_through_the_gateway(
    client: Client, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, 24 * MiB + 1)
    client.log_artifact(run_id, source, "blobs")
    local = client.download_artifacts(run_id, "blobs/big.bin", str(tmp_path / "back"))
    assert sha256_of(Path(local)) == expected


def test_text_and_dicts_round_trip_as_json_and_yaml(client: Client, run_id: str) -> None:
    data = {"lr": 0.01, "layers": [64, 32], "name": "mlp"}
    client.log_text(run_id, "héllo\nworld", "notes/readme.txt")
    client.log_dict(run_id, data, "config.json")
    client.log_dict(run_id, data, "config.yaml")
    root = client.get_run(run_id).info.artifact_uri
    assert json.loads(client.read_artifact_at(root, "config.json")) == data
    assert yaml.safe_load(client.read_artifact_at(root, "config.yaml")) == data
    assert mlgrid.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt", client.tracking_uri) == (
        "héllo\nworld"
    )
    for name in ("config.json", "config.yaml"):
        assert mlgrid.artifacts.load_dict(f"runs:/{run_id}/{name}", client.tracking_uri) == data


def test_figures_and_images_are_stored_as_images(
    client: Client, run_id: str, tmp_path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3], [3, 1, 2])
    client.log_figure(run_id, figure, "plots/line.png")
    plt.close(figure)
    pixels = np.zeros((8, 12, 3), dtype=np.uint8)
    pixels[:, :6] = [255, 0, 0]
    client.log_image(run_id, pixels, "images/array.png")
    client.log_image(run_id, Image.new("RGB", (5, 4), (0, 128, 255)), "images/pil.jpg")
    uri = f"runs:/{run_id}/images/array.png"
    loaded = mlgrid.artifacts.load_image(uri, client.tracking_uri)
    assert loaded.size == (12, 8)
    assert loaded.getpixel((0, 0)) == (255, 0, 0)
    assert loaded.getpixel((11, 7)) == (0, 0, 0)
    local = client.download_artifacts(run_id, "plots/line.png", str(tmp_path))
    assert Image.open(local).format == "PNG"
    assert Image.open(client.download_artifacts(run_id, "images/pil.jpg", str(tmp_path))).size == (
        5,
        4,
    )


def test_bad_images_are_refused_with_a_reason(client: Client, run_id: str) -> None:
    import numpy as np

    with pytest.raises(InvalidParameterValue, match=r"shape \(2, 2, 5\)"):
        client.log_image(run_id, np.zeros((2, 2, 5)), "x.png")
    with pytest.raises(InvalidParameterValue, match=r"\[0, 1\]"):
        client.log_image(run_id, np.full((2, 2), 3.5), "x.png")
    with pytest.raises(InvalidParameterValue, match=r"x\.txt"):
        client.log_image(run_id, np.zeros((2, 2)), "x.txt")


def test_module_functions_resolve_runs_uris_and_run_ids(
    client: Client, run_id: str, tmp_path: Path
) -> None:
    tracking = client.tracking_uri
    tree = tmp_path / "out"
    make_file(tree / "a.txt", 10)
    make_file(tree / "sub" / "b.txt", 20)
    client.log_artifacts(run_id, tree, "out")
    by_uri = mlgrid.artifacts.download_artifacts(
        artifact_uri=f"runs:/{run_id}/out", dst_path=str(tmp_path / "u"), tracking_uri=tracking
    )
    by_run = mlgrid.artifacts.download_artifacts(
        run_id=run_id, artifact_path="out/sub", dst_path=str(tmp_path / "r"), tracking_uri=tracking
    )
    assert tree_of(Path(by_uri)) == tree_of(tree)
    assert tree_of(Path(by_run)) == tree_of(tree / "sub")
    listed = mlgrid.artifacts.list_artifacts(
        artifact_uri=f"runs:/{run_id}/out", tracking_uri=tracking
    )
    assert [f.path for f in listed] == ["out/a.txt", "out/sub"]
    storage = client.get_run(run_id).info.artifact_uri + "/out/a.txt"
    direct = mlgrid.artifacts.download_artifacts(
        artifact_uri=storage, dst_path=str(tmp_path / "s"), tracking_uri=tracking
    )
    assert Path(direct) == tmp_path / "s" / "a.txt"
    assert sha256_of(Path(direct)) == sha256_of(tree / "a.txt")
    whole_dir = mlgrid.artifacts.download_artifacts(
        artifact_uri=client.get_run(run_id).info.artifact_uri + "/out",
        dst_path=str(tmp_path / "d"),
        tracking_uri=tracking,
    )
    assert Path(whole_dir) == tmp_path / "d" / "out"
    assert tree_of(Path(whole_dir)) == tree_of(tree)
    everything = client.download_artifacts(run_id, "", str(tmp_path / "all"))
    assert Path(everything) == tmp_path / "all"
    assert tree_of(Path(everything)) == {f"out/{k}": v for k, v in tree_of(tree).items()}
    with pytest.raises(InvalidParameterValue, match="exactly one"):
        mlgrid.artifacts.download_artifacts(tracking_uri=tracking)
    with pytest.raises(ResourceDoesNotExist):
        mlgrid.artifacts.load_text(f"runs:/{run_id}/missing.txt", tracking)


def test_fluent_functions_log_to_the_active_run(fluent_stack, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("fluent")
    tree = tmp_path / "tree"
    make_file(tree / "x.bin", 100)
    with mlgrid.start_run() as run:
        artifacts_fluent.log_artifact(source)
        artifacts_fluent.log_artifacts(tree, "tree")
        artifacts_fluent.log_text("some text", "t/notes.txt")
        artifacts_fluent.log_dict({"k": [1, 2]}, "t/d.yml")
        uri = artifacts_fluent.get_artifact_uri("t/notes.txt")
    run_id = run.info.run_id
    assert uri == run.info.artifact_uri + "/t/notes.txt"
    assert artifacts_fluent.load_text(f"runs:/{run_id}/t/notes.txt") == "some text"
    assert artifacts_fluent.load_dict(f"runs:/{run_id}/t/d.yml") == {"k": [1, 2]}
    assert mlgrid.artifacts.load_text(f"runs:/{run_id}/f.txt") == "fluent"
    listed = mlgrid.artifacts.list_artifacts(run_id=run_id)
    assert [f.path for f in listed] == ["f.txt", "t", "tree"]


def test_fluent_logging_starts_a_run_when_none_is_active(fluent_stack) -> None:
    assert mlgrid.active_run() is None
    artifacts_fluent.log_text("auto", "auto.txt")
    active = mlgrid.active_run()
    assert active is not None
    assert mlgrid.artifacts.load_text(f"runs:/{active.info.run_id}/auto.txt") == "auto"


def test_hostile_artifact_paths_are_refused_through_the_sdk(
    client: Client, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "x.txt"
    source.write_text("x")
    for bad in ("../escape", "%2e%2e/escape", "/abs", "a\\b"):
        with pytest.raises(InvalidParameterValue, match="not allowed"):
            client.log_artifact(run_id, source, bad)
    assert client.list_artifacts(run_id) == []


def test_embedded_mode_serves_artifacts_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLGRID_DEFAULT_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    embedded = Client(f"sqlite:///{tmp_path / 'embedded.db'}")
    experiment_id = embedded.create_experiment("embedded")
    run = embedded.create_run(experiment_id)
    source = tmp_path / "model.bin"
    expected = make_file(source, 3 * MiB + 7)
    embedded.log_artifact(run.info.run_id, source, "m")
    embedded.log_dict(run.info.run_id, {"a": 1}, "m/meta.json")
    assert [f.path for f in embedded.list_artifacts(run.info.run_id, "m")] == [
        "m/meta.json",
        "m/model.bin",
    ]
    local = embedded.download_artifacts(run.info.run_id, "m/model.bin", str(tmp_path / "dl"))
    assert sha256_of(Path(local)) == expected
    stored = Path(run.info.artifact_uri.removeprefix("file://")) / "m" / "model.bin"
    assert sha256_of(stored) == expected
