"""Hostile paths and URIs through the real service: INVALID_ARGUMENT naming the path, and
nothing written, read or deleted, for every RPC that takes a path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb

from .conftest import ArtifactsServer, tree_of

HOSTILE_PATHS = [
    "../x",
    "a/../../x",
    "%2e%2e/x",
    "%252e%252e/x",
    "..%2fx",
    "/etc/passwd",
    "C:\\x",
    "C:/x",
    "a\\b",
    "a\x00b",
    "a#b",
    "a?b",
    "a//b",
    ".mlgrid-multipart/x",
    "link/secret.txt",
    "leaf-link",
]


@pytest.fixture
def arena(artifacts_server: ArtifactsServer, tmp_path: Path) -> tuple[str, Path, Path]:
    """A run root with one file, next to files the service must never touch, and symlinks to a
    directory and to a file outside the allowed root."""
    _, base = artifacts_server.fresh_root()
    root = base / "run"
    outside = tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    (root / "inside.txt").write_text("inside")
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (base / "x").write_text("sibling of the root")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "leaf-link").symlink_to(outside / "secret.txt")
    return root.as_uri(), root, base


def _everything(base: Path) -> dict[str, str]:
    """Every file of the arena, including the directory outside the allowed root."""
    outside = (base / "run" / "link").resolve()
    return {**tree_of(base), **{f"outside/{k}": v for k, v in tree_of(outside).items()}}


def _calls(stub, uri: str, path: str) -> dict[str, Callable[[], object]]:
    def upload() -> object:
        first = pb.UploadArtifactRequest(artifact_uri=uri, path=path, file_size=4, data=b"evil")
        return stub.UploadArtifact(iter([first]))

    def download() -> object:
        return list(
            stub.DownloadArtifacts(pb.DownloadArtifactsRequest(artifact_uri=uri, path=path))
        )

    def upload_many() -> object:
        files = [
            pb.ArtifactFile(path="fine.txt", data=b"ok"),
            pb.ArtifactFile(path=path, data=b"x"),
        ]
        return stub.UploadArtifacts(pb.UploadArtifactsRequest(artifact_uri=uri, files=files))

    return {
        "upload": upload,
        "upload_many": upload_many,
        "download": download,
        "list": lambda: stub.ListArtifacts(pb.ListArtifactsRequest(artifact_uri=uri, path=path)),
        "delete": lambda: stub.DeleteArtifacts(
            pb.DeleteArtifactsRequest(artifact_uri=uri, path=path)
        ),
        "multipart": lambda: stub.CreateMultipartUpload(
            pb.CreateMultipartUploadRequest(artifact_uri=uri, path=path)
        ),
        "presign": lambda: stub.GetPresignedUrl(
            pb.GetPresignedUrlRequest(artifact_uri=uri, path=path)
        ),
    }


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_are_refused_and_touch_nothing(
    artifacts_server: ArtifactsServer, arena: tuple[str, Path, Path], path: str
) -> None:
    uri, root, base = arena
    before = _everything(base)
    for rpc, call in _calls(artifacts_server.stub, uri, path).items():
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, rpc
        assert repr(path) in caught.value.details(), (rpc, caught.value.details())
    assert _everything(base) == before
    assert not list(root.rglob(".mlgrid-*"))


@pytest.mark.parametrize(
    "make_uri",
    [
        lambda root: "file:///etc",
        lambda root: "/etc",
        lambda root: f"{root.as_uri()}/../outside",
        lambda root: f"{root.as_uri()}/%2e%2e/outside",
        lambda root: f"{root.as_uri()}/%252e%252e/outside",
        lambda root: f"{root.as_uri()}/link",
        lambda root: "file://otherhost" + str(root),
        lambda root: "relative/artifacts",
        lambda root: f"{root.as_uri()}?x=1",
        lambda root: f"{root.as_uri()}#frag",
        lambda root: "s3://bucket/a/../b",
    ],
    ids=[
        "etc-uri",
        "etc-path",
        "dotdot",
        "encoded-dotdot",
        "double-encoded-dotdot",
        "symlinked-root",
        "remote-host",
        "relative",
        "query",
        "fragment",
        "s3-dotdot",
    ],
)
def test_hostile_roots_are_refused_and_touch_nothing(
    artifacts_server: ArtifactsServer, arena: tuple[str, Path, Path], make_uri
) -> None:
    _, root, base = arena
    uri = make_uri(root)
    before = _everything(base)
    for rpc, call in _calls(artifacts_server.stub, uri, "secret.txt").items():
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, rpc
        assert "artifact_uri" in caught.value.details(), (rpc, caught.value.details())
    assert _everything(base) == before


def test_listing_hides_symlinks_that_leave_the_root(
    artifacts_server: ArtifactsServer, arena: tuple[str, Path, Path]
) -> None:
    uri, _, _ = arena
    listed = artifacts_server.stub.ListArtifacts(pb.ListArtifactsRequest(artifact_uri=uri))
    assert [f.path for f in listed.files] == ["a", "inside.txt"]
    files = artifacts_server.stub.DownloadArtifacts(pb.DownloadArtifactsRequest(artifact_uri=uri))
    assert [m.path for m in files if m.path] == ["inside.txt"]
