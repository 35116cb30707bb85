"""The artifacts service on the s3 backend (moto's server mode, or MLGRID_TEST_S3_ENDPOINT)."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.artifacts import transfer

from .conftest import ArtifactsServer, make_file, sha256_of, tree_of

MiB = 1024 * 1024


@pytest.fixture
def s3_root(s3_env, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # The service's default root is local: the bucket is allowed as an extra root.
    monkeypatch.setenv("MLGRID_ARTIFACTS_ALLOWED_ROOTS", f"s3://{s3_bucket}")
    return f"s3://{s3_bucket}/experiments/1/run-a/artifacts"


@pytest.mark.parametrize(
    "size", [0, 1, 4 * MiB + 1, 40 * MiB + 7], ids=["0B", "1B", "4MiB+1", "40MiB+7"]
)
def test_files_round_trip_through_s3(
    artifacts_server: ArtifactsServer, s3_root: str, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "data.bin"
    expected = make_file(source, size)
    transport = artifacts_server.transport()
    info = transfer.upload_file(transport, s3_root, source, "d/data.bin")
    assert info.file_size == size
    local = transfer.download(transport, s3_root, "d/data.bin", tmp_path / "out.bin")
    assert sha256_of(Path(local)) == expected


@pytest.mark.slow
def test_a_200_mib_file_round_trips_through_s3(
    artifacts_server: ArtifactsServer, s3_root: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, 200 * MiB)
    transport = artifacts_server.transport()
    transfer.upload_file(transport, s3_root, source, "big.bin")
    local = transfer.download(transport, s3_root, "big.bin", tmp_path / "back.bin")
    assert sha256_of(Path(local)) == expected


def test_directory_trees_round_trip_through_s3(
    artifacts_server: ArtifactsServer, s3_root: str, tmp_path: Path
) -> None:
    source = tmp_path / "tree"
    for index, relative in enumerate(["a.txt", "sub/b.bin", "sub/deeper/c.json"]):
        make_file(source / relative, 100 + index, index)
    transport = artifacts_server.transport()
    transfer.upload_dir(transport, s3_root, source, "model")
    listed = transfer.list_artifacts(transport, s3_root, "model")
    assert [(f.path, f.is_dir) for f in listed] == [("model/a.txt", False), ("model/sub", True)]
    local = transfer.download(transport, s3_root, "model", tmp_path / "out")
    assert tree_of(Path(local)) == tree_of(source)


def test_presigned_urls_round_trip_against_the_store(
    artifacts_server: ArtifactsServer, s3_root: str
) -> None:
    stub = artifacts_server.stub
    put = stub.GetPresignedUrl(
        pb.GetPresignedUrlRequest(
            artifact_uri=s3_root, path="direct/blob.bin", method=pb.PRESIGNED_URL_METHOD_PUT
        )
    )
    body = b"straight to the bucket" * 1000
    headers = {"Content-Type": "application/octet-stream", **put.headers}
    request = urllib.request.Request(put.url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    get = stub.GetPresignedUrl(
        pb.GetPresignedUrlRequest(
            artifact_uri=s3_root, path="direct/blob.bin", method=pb.PRESIGNED_URL_METHOD_GET
        )
    )
    with urllib.request.urlopen(get.url, timeout=30) as response:
        assert response.read() == body
    listed = stub.ListArtifacts(pb.ListArtifactsRequest(artifact_uri=s3_root, path="direct"))
    assert [(f.path, f.file_size) for f in listed.files] == [("direct/blob.bin", len(body))]


def test_large_files_go_direct_with_presigned_multipart_urls(
    artifacts_server: ArtifactsServer,
    s3_root: str,
    s3_bucket: str,
    s3_endpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLGRID_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(6 * MiB))
    monkeypatch.setenv("MLGRID_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * MiB))
    source = tmp_path / "big.bin"
    expected = make_file(source, 12 * MiB + 3)
    transport = artifacts_server.transport()
    sent: list[int] = []
    info = transfer.upload_file(transport, s3_root, source, "m/big.bin", progress=sent.append)
    assert info.file_size == 12 * MiB + 3
    assert sent == [5 * MiB, 5 * MiB, 2 * MiB + 3] or sorted(sent) == sorted(
        [5 * MiB, 5 * MiB, 2 * MiB + 3]
    )
    # An S3 multipart object's ETag ends in -<number of parts>: these bytes went direct.
    key = s3_root.split("/", 3)[3] + "/m/big.bin"
    assert s3_endpoint.client().stat_object(s3_bucket, key).etag.endswith("-3")
    local = transfer.download(transport, s3_root, "m/big.bin", tmp_path / "back.bin")
    assert sha256_of(Path(local)) == expected


def test_multipart_upload_through_the_service_resumes_on_s3(
    artifacts_server: ArtifactsServer, s3_root: str
) -> None:
    stub = artifacts_server.stub
    started = stub.CreateMultipartUpload(
        pb.CreateMultipartUploadRequest(artifact_uri=s3_root, path="r.bin", num_parts=2)
    )
    assert [c.part_number for c in started.credentials] == [1, 2]
    ids = {"artifact_uri": s3_root, "path": "r.bin", "upload_id": started.upload_id}
    first, second = b"a" * (5 * MiB), b"b" * 1000
    stub.UploadPart(
        iter([pb.UploadPartRequest(**ids, part_number=1, part_size=len(first), data=first)])
    )
    done = stub.ListUploadedParts(pb.ListUploadedPartsRequest(**ids)).parts
    assert [(p.part_number, p.size) for p in done] == [(1, len(first))]
    stub.UploadPart(iter([pb.UploadPartRequest(**ids, part_number=2, data=second, last=True)]))
    done = stub.ListUploadedParts(pb.ListUploadedPartsRequest(**ids)).parts
    stub.CompleteMultipartUpload(pb.CompleteMultipartUploadRequest(**ids, parts=done))
    data = b"".join(
        m.data
        for m in stub.DownloadArtifacts(
            pb.DownloadArtifactsRequest(artifact_uri=s3_root, path="r.bin")
        )
    )
    assert data == first + second


def test_an_upload_cancelled_midway_leaves_no_object(
    artifacts_server: ArtifactsServer, s3_root: str, s3_bucket: str, s3_endpoint
) -> None:
    halfway = threading.Event()
    release = threading.Event()

    def requests():
        yield pb.UploadArtifactRequest(artifact_uri=s3_root, path="cut.bin", file_size=64 * MiB)
        for index in range(64):
            yield pb.UploadArtifactRequest(data=b"z" * MiB)
            if index == 40:  # past the first 16 MiB part: a multipart upload is under way
                halfway.set()
                release.wait(10)

    future = artifacts_server.stub.UploadArtifact.future(requests())
    assert halfway.wait(20)
    time.sleep(0.3)
    future.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    client = s3_endpoint.client()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pending = client._list_multipart_uploads(s3_bucket).uploads
        if not pending:
            break
        time.sleep(0.1)
    assert list(client.list_objects(s3_bucket, recursive=True)) == []
    assert not client._list_multipart_uploads(s3_bucket).uploads


def test_a_stack_with_an_s3_default_artifact_root_stores_runs_in_the_bucket(
    s3_env, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.stack import start_stack

    from mlgrid.client import Client

    monkeypatch.setenv("MLGRID_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(6 * MiB))
    monkeypatch.setenv("MLGRID_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * MiB))
    with start_stack(tmp_path / "stack", default_artifact_root=f"s3://{s3_bucket}/mlgrid") as stack:
        client = Client(stack.tracking_uri)
        run = client.create_run(client.create_experiment("on-s3"))
        assert run.info.artifact_uri.startswith(f"s3://{s3_bucket}/mlgrid/")
        tree = tmp_path / "model"
        make_file(tree / "MLmodel", 300)
        make_file(tree / "weights.bin", 11 * MiB, 1)  # goes direct, in presigned parts
        client.log_artifacts(run.info.run_id, tree, "model")
        client.log_text(run.info.run_id, "on s3", "notes.txt")
        assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["model", "notes.txt"]
        local = client.download_artifacts(run.info.run_id, "model", str(tmp_path / "dl"))
        assert tree_of(Path(local)) == tree_of(tree)
    keys = sorted(o.object_name for o in s3_env.client().list_objects(s3_bucket, recursive=True))
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["MLmodel", "weights.bin", "notes.txt"]


def test_oversized_parts_through_the_service_are_refused(
    artifacts_server: ArtifactsServer, s3_root: str
) -> None:
    stub = artifacts_server.stub
    started = stub.CreateMultipartUpload(
        pb.CreateMultipartUploadRequest(artifact_uri=s3_root, path="huge.bin")
    )
    ids = {"artifact_uri": s3_root, "path": "huge.bin", "upload_id": started.upload_id}
    chunks = [pb.UploadPartRequest(**ids, part_number=1, part_size=33 * MiB)]
    chunks += [pb.UploadPartRequest(data=b"q" * MiB) for _ in range(33)]
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadPart(iter(chunks))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "presigned part URLs" in caught.value.details()
    assert stub.ListUploadedParts(pb.ListUploadedPartsRequest(**ids)).parts == []
    stub.AbortMultipartUpload(pb.AbortMultipartUploadRequest(**ids))
