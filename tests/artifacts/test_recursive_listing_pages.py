"""A recursive listing read page by page through the artifacts service is every file once, in
strict path order, with no gap and no repeat at any page size: on a local root and on S3 (the
moto server). The names are the ones a depth-first walk gets wrong: a directory beside files
whose names extend it with a character that sorts before "/" ("model/..." after "model.pkl",
"model-2", "model 3")."""

from __future__ import annotations

import io
import os
from pathlib import Path

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as pb_grpc
from mlgrid_services.artifacts.repositories.file import FileArtifactRepository

from .conftest import ArtifactsServer

# In plain string order, which is the order a listing must give.
FILES = sorted(
    [
        "!first",
        "model 3",
        "model-2/a",
        "model.pkl",
        "model/MLmodel",
        "model/x.bin",
        "model/x/y.bin",
        "model/x-1/z",
        "model_4/deep/deeper/leaf.txt",
        "nested/deep-er/x",
        "nested/deep.txt",
        "nested/deep/deeper/leaf.txt",
        "nested/deep/deeper0",
        "z",
    ]
)


def _pages(stub: pb_grpc.ArtifactsServiceStub, uri: str, path: str, size: int) -> list[list[str]]:
    pages, token = [], ""
    while True:
        answer = stub.ListArtifacts(
            pb.ListArtifactsRequest(
                artifact_uri=uri, path=path, page_size=size, page_token=token, recursive=True
            )
        )
        pages.append([f.path for f in answer.files])
        assert all(not f.is_dir for f in answer.files)
        token = answer.next_page_token
        if not token:
            return pages
        assert len(pages) <= len(FILES) + 1, "the listing does not end"


def _check_every_page_size(stub: pb_grpc.ArtifactsServiceStub, uri: str) -> None:
    whole = stub.ListArtifacts(pb.ListArtifactsRequest(artifact_uri=uri, recursive=True))
    assert [f.path for f in whole.files] == FILES
    for size in (1, 2, 3, 4, 5, 13, 14, 100):
        pages = _pages(stub, uri, "", size)
        listed = [path for page in pages for path in page]
        assert listed == FILES, f"page size {size}: {pages}"
        assert all(len(page) <= size for page in pages)
        assert all(pages[:-1])  # only the last page may be empty
    below = [p for p in FILES if p.startswith("nested/")]
    for size in (1, 2, 3):
        assert [p for page in _pages(stub, uri, "nested", size) for p in page] == below


def test_local_root(artifacts_server: ArtifactsServer) -> None:
    uri, local = artifacts_server.fresh_root()
    for number, name in enumerate(FILES):
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(b"x" * number)
    _check_every_page_size(artifacts_server.stub, uri)


def test_s3_root(
    artifacts_server: ArtifactsServer, s3_env, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_ARTIFACTS_ALLOWED_ROOTS", f"s3://{s3_bucket}")
    prefix = "experiments/1/run-b/artifacts"
    client = s3_env.client()
    for number, name in enumerate(FILES):
        client.put_object(s3_bucket, f"{prefix}/{name}", io.BytesIO(b"x" * number), number)
    # A neighbour whose key extends the root's: not part of this root's listing.
    client.put_object(s3_bucket, f"{prefix}-other/a", io.BytesIO(b""), 0)
    _check_every_page_size(artifacts_server.stub, f"s3://{s3_bucket}/{prefix}")


def test_a_token_from_another_listing_is_refused(artifacts_server: ArtifactsServer) -> None:
    uri, local = artifacts_server.fresh_root()
    (local / "a").mkdir(parents=True)
    (local / "a" / "b").write_bytes(b"")
    with pytest.raises(grpc.RpcError) as caught:
        artifacts_server.stub.ListArtifacts(
            pb.ListArtifactsRequest(
                artifact_uri=uri, page_size=1, page_token="nope", recursive=True
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_local_page_reads_only_the_directories_on_its_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of a recursive listing skips the subtrees before its key unread, and stops at
    the end of the page: paging a large tree costs about one walk, not one walk per page."""
    root = tmp_path / "root"
    for d in range(30):
        for f in range(10):
            (root / f"d{d:02}").mkdir(parents=True, exist_ok=True)
            (root / f"d{d:02}" / f"f{f}").write_bytes(b"x" * f)
    repository = FileArtifactRepository(root.as_uri())
    read: list[str] = []
    scandir = os.scandir

    def watched(path):  # the real scandir, noting which directory it reads
        read.append(Path(path).name)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", watched)
    page = repository.walk_files_page("", "d17/f9", 12)
    assert [(i.path, i.file_size) for i in page] == [(f"d18/f{f}", f) for f in range(10)] + [
        ("d19/f0", 0),
        ("d19/f1", 1),
    ]
    assert read == ["root", "d17", "d18", "d19"]
