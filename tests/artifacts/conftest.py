"""Fixtures of the artifacts tests: one repository per backend, and a real artifacts service."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as pb_grpc
from mlgrid.artifacts.repository import ArtifactRepository
from mlgrid.protocol import CHANNEL_OPTIONS
from mlgrid.transport import Transport
from mlgrid_services.artifacts.app import create
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import RunningServer, start_server


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """Writes ``size`` pseudo-random bytes to ``path`` (in 1 MiB blocks); returns their sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (1 << 15)  # 1 MiB
    with path.open("wb") as handle:
        remaining = size
        counter = 0
        while remaining:
            piece = block[: min(len(block), remaining)]
            piece = counter.to_bytes(8, "little") + piece[8:] if len(piece) >= 8 else piece
            handle.write(piece)
            digest.update(piece)
            remaining -= len(piece)
            counter += 1
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree_of(root: Path) -> dict[str, str]:
    """relative path -> sha256 for every file below ``root``."""
    return {
        p.relative_to(root).as_posix(): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(params=["file", "s3"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactRepository:
    """The same suite runs against each backend."""
    if request.param == "file":
        from mlgrid_services.artifacts.repositories.file import FileArtifactRepository

        return FileArtifactRepository((tmp_path / "root").as_uri())
    from mlgrid_services.artifacts.repositories.s3 import S3ArtifactRepository, S3Settings

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = endpoint.make_bucket()
    settings = S3Settings(
        endpoint_url=endpoint.endpoint_url,
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
        region=endpoint.region,
    )
    return S3ArtifactRepository(f"s3://{bucket}/runs/abc/artifacts", settings=settings)


@dataclass
class ArtifactsServer:
    """The artifacts service alone, on 127.0.0.1:0, allowed to use ``root``."""

    running: RunningServer
    root: Path
    channel: grpc.Channel

    @property
    def stub(self) -> pb_grpc.ArtifactsServiceStub:
        return pb_grpc.ArtifactsServiceStub(self.channel)

    @property
    def address(self) -> str:
        return self.running.address

    def transport(self) -> Transport:
        # The SDK's transport aimed straight at the service (no gateway needed for artifacts).
        return Transport(f"grpc://{self.address}")

    def fresh_root(self) -> tuple[str, Path]:
        """A new, empty artifact root inside the allowed root: (URI, local path)."""
        local = self.root / uuid.uuid4().hex
        return local.as_uri(), local


@pytest.fixture(scope="session")
def artifacts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtifactsServer]:
    root = tmp_path_factory.mktemp("artifact-root").resolve()
    app = create(ServiceConfig(default_artifact_root=root.as_uri()))
    running = start_server(app.services)
    channel = grpc.insecure_channel(running.address, options=CHANNEL_OPTIONS)
    try:
        yield ArtifactsServer(running, root, channel)
    finally:
        channel.close()
        running.stop(grace=1.0)
        app.close()


@pytest.fixture
def run_root(artifacts_server: ArtifactsServer) -> tuple[str, Path]:
    return artifacts_server.fresh_root()
