"""The mlflow-artifacts proxy with the real mlflow client: runs get ``mlflow-artifacts:/`` URIs
and their files move through the REST port, streamed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import mlflow
import pytest

from .helpers import call, error_of, unique


@pytest.fixture
def run(client: mlflow.MlflowClient, rest_url: str) -> mlflow.entities.Run:
    mlflow.set_tracking_uri(rest_url)
    return client.create_run(client.create_experiment(unique("art")))


def test_log_and_download_one_file(
    client: mlflow.MlflowClient, run: mlflow.entities.Run, tmp_path: Path
) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello world")
    client.log_artifact(run.info.run_id, str(source), "sub")
    got = client.download_artifacts(run.info.run_id, "sub/hello.txt", str(tmp_path / "out"))
    assert Path(got).read_text() == "hello world"


def test_log_artifacts_and_download_a_directory(
    client: mlflow.MlflowClient, run: mlflow.entities.Run, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "nested").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "nested" / "b.bin").write_bytes(b"\x00\x01\x02")
    (tree / "empty.txt").write_bytes(b"")
    client.log_artifacts(run.info.run_id, str(tree), "model")
    listed = mlflow.artifacts.list_artifacts(artifact_uri=f"{run.info.artifact_uri}/model")
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [
        ("model/a.txt", False, 1),
        ("model/empty.txt", False, 0),
        ("model/nested", True, None),
    ]
    out = Path(client.download_artifacts(run.info.run_id, "model", str(tmp_path / "out")))
    assert (out / "a.txt").read_text() == "a"
    assert (out / "nested" / "b.bin").read_bytes() == b"\x00\x01\x02"
    assert (out / "empty.txt").read_bytes() == b""


def test_run_artifact_listing_for_the_ui(
    rest_url: str, client: mlflow.MlflowClient, run: mlflow.entities.Run, tmp_path: Path
) -> None:
    source = tmp_path / "metrics.json"
    source.write_text("{}")
    client.log_artifact(run.info.run_id, str(source), "eval")
    listed = call(
        rest_url,
        "GET",
        "/ajax-api/2.0/mlflow/artifacts/list",
        params={"run_id": run.info.run_id, "path": "eval"},
    )
    assert listed.json() == {
        "root_uri": run.info.artifact_uri,
        "files": [{"path": "eval/metrics.json", "is_dir": False, "file_size": 2}],
    }
    shown = call(
        rest_url,
        "GET",
        "/get-artifact",
        params={"run_uuid": run.info.run_id, "path": "eval/metrics.json"},
    )
    assert (shown.status_code, shown.content) == (200, b"{}")


def test_large_file_round_trips_through_the_proxy(
    client: mlflow.MlflowClient, run: mlflow.entities.Run, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(6 * 1024 * 1024 + 123)  # several upload chunks
    source.write_bytes(data)
    client.log_artifact(run.info.run_id, str(source))
    got = Path(client.download_artifacts(run.info.run_id, "big.bin", str(tmp_path / "out")))
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_proxy_put_get_list_delete_over_raw_http(rest_url: str) -> None:
    base = f"/api/2.0/mlflow-artifacts/artifacts/{unique('raw')}"
    put = call(rest_url, "PUT", f"{base}/dir/file.txt", raw=b"payload")
    assert (put.status_code, put.json()) == (200, {})
    got = call(rest_url, "GET", f"{base}/dir/file.txt")
    assert (got.status_code, got.content) == (200, b"payload")
    listed = call(
        rest_url,
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts",
        params={"path": base.rsplit("/", 1)[1]},
    )
    assert listed.json() == {"files": [{"path": "dir", "is_dir": True}]}
    gone = call(rest_url, "DELETE", f"{base}/dir/file.txt")
    assert gone.status_code == 200
    missing = call(rest_url, "GET", f"{base}/dir/file.txt")
    assert error_of(missing)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    empty = call(
        rest_url, "GET", "/api/2.0/mlflow-artifacts/artifacts", params={"path": unique("nothing")}
    )
    assert (empty.status_code, empty.json()) == (200, {})


def test_chunked_upload_is_streamed(rest_url: str) -> None:
    path = f"/api/2.0/mlflow-artifacts/artifacts/{unique('chunked')}/f.bin"
    parts = [b"x" * 70_000, b"y" * 5, b"z" * 300_000]
    put = call(rest_url, "PUT", path, raw=iter(parts))  # requests sends an iterator chunked
    assert put.status_code == 200, put.text
    assert call(rest_url, "GET", path).content == b"".join(parts)


def test_multipart_upload_through_the_proxy(
    client: mlflow.MlflowClient,
    run: mlflow.entities.Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1024 * 1024))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(1024 * 1024))
    source = tmp_path / "parts.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)  # four parts
    source.write_bytes(data)
    client.log_artifact(run.info.run_id, str(source), "mpu")
    got = Path(client.download_artifacts(run.info.run_id, "mpu/parts.bin", str(tmp_path / "out")))
    assert got.read_bytes() == data


def test_multipart_abort_leaves_no_file(rest_url: str) -> None:
    folder = unique("aborted")
    created = call(
        rest_url,
        "POST",
        f"/api/2.0/mlflow-artifacts/mpu/create/{folder}",
        {"path": "f.bin", "num_parts": 1},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    [credential] = body["credentials"]
    part = call(rest_url, "PUT", credential["url"].split(rest_url, 1)[1], raw=b"partial")
    assert part.status_code == 200 and part.headers["ETag"]
    aborted = call(
        rest_url,
        "POST",
        f"/api/2.0/mlflow-artifacts/mpu/abort/{folder}",
        {"path": "f.bin", "upload_id": body["upload_id"]},
    )
    assert aborted.status_code == 200
    assert (
        call(rest_url, "GET", f"/api/2.0/mlflow-artifacts/artifacts/{folder}/f.bin").status_code
        == 404
    )


def test_model_version_artifact_for_the_ui(
    rest_url: str, client: mlflow.MlflowClient, run: mlflow.entities.Run, tmp_path: Path
) -> None:
    source = tmp_path / "MLmodel"
    source.write_text("flavors: {}")
    client.log_artifact(run.info.run_id, str(source), "model")
    name = unique("mv-art")
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    shown = call(
        rest_url,
        "GET",
        "/model-versions/get-artifact",
        params={"name": name, "version": "1", "path": "MLmodel"},
    )
    assert (shown.status_code, shown.content) == (200, b"flavors: {}")
