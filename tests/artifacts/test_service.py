"""The artifacts service over real gRPC (port 0), file backend: what a client sees."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.artifacts import transfer
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .conftest import ArtifactsServer, make_file, sha256_of, tree_of

MiB = 1024 * 1024
HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    "size", [0, 1, 4 * MiB + 1, 200 * MiB], ids=["0B", "1B", "4MiB+1", "200MiB"]
)
def test_files_round_trip_byte_for_byte(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path], tmp_path: Path, size: int
) -> None:
    uri, _ = run_root
    source = tmp_path / "src" / "data.bin"
    expected = make_file(source, size)
    transport = artifacts_server.transport()
    info = transfer.upload_file(transport, uri, source, "nested/data.bin")
    assert (info.path, info.file_size) == ("nested/data.bin", size)
    source.unlink()  # keep the disk footprint of the 200 MiB case down
    local = transfer.download(transport, uri, "nested/data.bin", tmp_path / "out" / "data.bin")
    assert sha256_of(Path(local)) == expected


def test_upload_response_carries_the_sha256_of_what_was_stored(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path], tmp_path: Path
) -> None:
    uri, local_root = run_root
    expected = make_file(tmp_path / "f.bin", 3 * MiB + 5)
    data = (tmp_path / "f.bin").read_bytes()
    requests = [pb.UploadArtifactRequest(artifact_uri=uri, path="f.bin", sha256=expected)]
    requests += [pb.UploadArtifactRequest(data=data[i : i + MiB]) for i in range(0, len(data), MiB)]
    requests[-1].last = True  # no size declared: the final message marks the end
    response = artifacts_server.stub.UploadArtifact(iter(requests))
    assert response.sha256 == expected
    assert sha256_of(local_root / "f.bin") == expected


def test_a_wrong_checksum_or_size_stores_nothing(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, local_root = run_root
    bad_sha = [
        pb.UploadArtifactRequest(
            artifact_uri=uri, path="a.bin", sha256="0" * 64, data=b"x", last=True
        )
    ]
    bad_size = [pb.UploadArtifactRequest(artifact_uri=uri, path="b.bin", file_size=10, data=b"x")]
    too_long = [
        pb.UploadArtifactRequest(artifact_uri=uri, path="c.bin", file_size=1, data=b"xy"),
    ]
    for requests in (bad_sha, bad_size, too_long):
        with pytest.raises(grpc.RpcError) as caught:
            artifacts_server.stub.UploadArtifact(iter(requests))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not any(p.is_file() for p in local_root.rglob("*"))


def test_a_stream_without_size_or_end_marker_is_not_stored(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    # On the server, a stream whose client died ends just like a finished one; only a declared
    # size or an explicit last=true proves it is whole.
    uri, local_root = run_root
    unmarked = [
        pb.UploadArtifactRequest(artifact_uri=uri, path="u.bin", data=b"abc"),
        pb.UploadArtifactRequest(data=b"def"),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        artifacts_server.stub.UploadArtifact(iter(unmarked))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "last=true" in caught.value.details()
    assert not (local_root / "u.bin").exists()
    unmarked[-1].last = True
    response = artifacts_server.stub.UploadArtifact(iter(unmarked))
    assert response.file.file_size == 6
    assert (local_root / "u.bin").read_bytes() == b"abcdef"


def test_directory_trees_round_trip(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path], tmp_path: Path
) -> None:
    uri, _ = run_root
    source = tmp_path / "tree"
    for index, relative in enumerate(
        [
            "a.txt",
            "empty.bin",
            "sub/b.bin",
            "sub/deeper/c.json",
            "sub/deeper/d e.txt",
            "z/y/x/w.txt",
        ]
    ):
        make_file(source / relative, 0 if "empty" in relative else 1000 + index * 4099, index)
    # Small files travel in batches, larger ones stream on their own: both in one tree.
    make_file(source / "sub" / "weights.bin", 3 * MiB + 11, 42)
    transport = artifacts_server.transport()
    infos = transfer.upload_dir(transport, uri, source, "model")
    assert sorted(i.path for i in infos) == sorted(f"model/{k}" for k in tree_of(source))
    listed = transfer.list_artifacts(transport, uri, "model")
    assert [(f.path, f.is_dir) for f in listed] == [
        ("model/a.txt", False),
        ("model/empty.bin", False),
        ("model/sub", True),
        ("model/z", True),
    ]
    local = transfer.download(transport, uri, "model", tmp_path / "out" / "model")
    assert tree_of(Path(local)) == tree_of(source)
    whole = transfer.download(transport, uri, "", tmp_path / "whole")
    assert tree_of(Path(whole)) == {f"model/{k}": v for k, v in tree_of(source).items()}


def test_listing_is_paged_in_path_order(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, local_root = run_root
    local_root.mkdir(parents=True)
    for index in range(25):
        (local_root / f"f{index:02d}.txt").write_text(str(index))
    seen: list[str] = []
    token = ""
    while True:
        page = artifacts_server.stub.ListArtifacts(
            pb.ListArtifactsRequest(artifact_uri=uri, page_size=10, page_token=token)
        )
        assert len(page.files) <= 10
        seen += [f.path for f in page.files]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"f{index:02d}.txt" for index in range(25)]


def test_a_page_token_that_was_not_handed_out_is_refused(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, local_root = run_root
    local_root.mkdir(parents=True)
    (local_root / "a.txt").write_text("a")
    # base64 of "a.txt": the shape a hand-made "start after this path" token would have.
    forged = "YS50eHQ="
    with pytest.raises(grpc.RpcError) as caught:
        artifacts_server.stub.ListArtifacts(
            pb.ListArtifactsRequest(artifact_uri=uri, page_size=10, page_token=forged)
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in caught.value.details()
    assert "previous artifact listing call" in caught.value.details()


def test_concurrent_uploads_to_one_run_all_land(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path], tmp_path: Path
) -> None:
    uri, local_root = run_root
    transport = artifacts_server.transport()
    sources = {f"part-{i}.bin": make_file(tmp_path / f"{i}.bin", 200_000 + i, i) for i in range(24)}

    def upload(name: str) -> None:
        index = name.split("-")[1].split(".")[0]
        transfer.upload_file(transport, uri, tmp_path / f"{index}.bin", f"out/{name}")

    # Two writers racing on the same name must leave one whole file, never a mix.
    race = tmp_path / "race.bin"
    race_sha = make_file(race, 3 * MiB, 99)
    with ThreadPoolExecutor(max_workers=12) as pool:
        jobs = [pool.submit(upload, name) for name in sources]
        jobs += [
            pool.submit(transfer.upload_file, transport, uri, race, "out/race.bin")
            for _ in range(6)
        ]
        for job in jobs:
            job.result()
    stored = tree_of(local_root / "out")
    assert stored == {**sources, "race.bin": race_sha}
    assert not [p.name for p in (local_root / "out").iterdir() if p.name.startswith(".")]


def test_multipart_upload_through_the_service_resumes(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, local_root = run_root
    stub = artifacts_server.stub
    parts = [bytes([n]) * (MiB + n) for n in (1, 2, 3)]
    started = stub.CreateMultipartUpload(
        pb.CreateMultipartUploadRequest(artifact_uri=uri, path="m/big.bin", num_parts=3)
    )
    assert started.upload_id and not started.credentials  # no presigned URLs on a local disk
    ids = {"artifact_uri": uri, "path": "m/big.bin", "upload_id": started.upload_id}

    def send(number: int) -> None:
        data = parts[number - 1]
        stub.UploadPart(
            iter(
                [
                    pb.UploadPartRequest(**ids, part_number=number, data=data[:MiB]),
                    pb.UploadPartRequest(data=data[MiB:], last=True),
                ]
            )
        )

    send(1)
    done = stub.ListUploadedParts(pb.ListUploadedPartsRequest(**ids)).parts
    assert [p.part_number for p in done] == [1]
    send(2)
    send(3)
    done = stub.ListUploadedParts(pb.ListUploadedPartsRequest(**ids)).parts
    finished = stub.CompleteMultipartUpload(pb.CompleteMultipartUploadRequest(**ids, parts=done))
    assert finished.file.file_size == sum(len(p) for p in parts)
    assert (local_root / "m" / "big.bin").read_bytes() == b"".join(parts)
    assert [
        f.path for f in stub.ListArtifacts(pb.ListArtifactsRequest(artifact_uri=uri)).files
    ] == ["m"]


def test_presigned_urls_are_refused_on_the_file_backend(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, _ = run_root
    with pytest.raises(grpc.RpcError) as caught:
        artifacts_server.stub.GetPresignedUrl(pb.GetPresignedUrlRequest(artifact_uri=uri, path="a"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "presigned" in caught.value.details()


def test_missing_artifacts_are_not_found(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path], tmp_path: Path
) -> None:
    uri, _ = run_root
    with pytest.raises(ResourceDoesNotExist, match=r"nope\.txt"):
        transfer.download(artifacts_server.transport(), uri, "nope.txt", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_upload_cancelled_midway_leaves_nothing(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, local_root = run_root
    halfway = threading.Event()
    release = threading.Event()

    def requests():
        yield pb.UploadArtifactRequest(
            artifact_uri=uri, path="dir/cancelled.bin", file_size=8 * MiB
        )
        for index in range(8):
            yield pb.UploadArtifactRequest(data=b"x" * MiB)
            if index == 4:
                halfway.set()
                release.wait(10)

    future = artifacts_server.stub.UploadArtifact.future(requests())
    assert halfway.wait(10)
    time.sleep(0.2)  # let the service write what it received
    future.cancel()
    release.set()
    _wait_until_no_files(local_root)
    assert not (local_root / "dir" / "cancelled.bin").exists()


@pytest.mark.parametrize("route", ["direct", "through-gateway"])
def test_an_upload_whose_client_process_is_killed_leaves_nothing(
    artifacts_server: ArtifactsServer,
    run_root: tuple[str, Path],
    request: pytest.FixtureRequest,
    route: str,
) -> None:
    # Behind the gateway the service sees the forwarded stream end "normally" when the client
    # dies; only the declared size tells it the file is incomplete.
    if route == "direct":
        target, (uri, local_root) = artifacts_server.address, run_root
    else:
        stack = request.getfixturevalue("grpc_stack")
        local_root = Path(stack.artifact_root.removeprefix("file://")) / f"kill-{uuid.uuid4().hex}"
        target, uri = stack.target, local_root.as_uri()
    script = f"""
import sys, time, grpc
from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb, artifacts_service_pb2_grpc as g
stub = g.ArtifactsServiceStub(grpc.insecure_channel({target!r}))
def requests():
    yield pb.UploadArtifactRequest(artifact_uri={uri!r}, path="killed.bin", file_size=1000 << 20)
    for index in range(1000):
        yield pb.UploadArtifactRequest(data=b"y" * (1 << 20))
        if index == 5:
            print("sent", flush=True)
        time.sleep(0.05)
stub.UploadArtifact(requests())
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "sent"
        time.sleep(0.3)
        assert any(p.is_file() for p in local_root.rglob("*")), "the upload never started"
    finally:
        child.kill()
        child.wait()
    _wait_until_no_files(local_root)
    assert not (local_root / "killed.bin").exists()


def _wait_until_no_files(root: Path, timeout: float = 10.0) -> None:
    """Waits for the service to notice the cancellation and remove its temp file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(p.is_file() for p in root.rglob("*")):
            return
        time.sleep(0.05)
    leftovers = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    raise AssertionError(f"files left behind after a cancelled upload: {leftovers}")


def test_sdk_errors_come_back_typed(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path], tmp_path: Path
) -> None:
    uri, _ = run_root
    source = tmp_path / "f.txt"
    source.write_text("x")
    with pytest.raises(InvalidParameterValue, match=r"'\.\./f\.txt'"):
        transfer.upload_file(artifacts_server.transport(), uri, source, "../f.txt")


def test_a_batch_naming_a_file_twice_is_refused_and_stores_nothing(
    artifacts_server: ArtifactsServer, run_root: tuple[str, Path]
) -> None:
    uri, local = run_root
    files = [
        pb.ArtifactFile(path="b.txt", data=b"1"),
        pb.ArtifactFile(path="a.txt", data=b"2"),
        pb.ArtifactFile(path="./b.txt", data=b"3"),  # the same name once normalised
    ]
    with pytest.raises(grpc.RpcError) as caught:
        artifacts_server.stub.UploadArtifacts(
            pb.UploadArtifactsRequest(artifact_uri=uri, files=files)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'b.txt' more than once" in caught.value.details()
    assert not local.exists() or tree_of(local) == {}
