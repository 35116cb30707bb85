"""Bytes in flight are bounded: the artifacts service runs a limited number of transfers at
once, the rest wait without buffering, and one that cannot get a slot is refused with
RESOURCE_EXHAUSTED naming the setting."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as pb_grpc
from mlgrid_services.artifacts.app import BULK_SERVER_OPTIONS, SERVICE_NAME
from mlgrid_services.artifacts.domain import ArtifactsDomain
from mlgrid_services.artifacts.servicer import ArtifactsServicer
from mlgrid_services.artifacts.transfer_gate import TransferGate
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService, start_server

from .measure_backpressure import measure


@pytest.fixture
def one_slot_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The artifacts service with MLGRID_ARTIFACTS_MAX_TRANSFERS=1 and a 0.5 s wait."""
    monkeypatch.setenv("MLGRID_ARTIFACTS_MAX_TRANSFERS", "1")
    monkeypatch.setenv("MLGRID_ARTIFACTS_TRANSFER_WAIT", "0.5")
    root = tmp_path / "root"
    root.mkdir()
    config = ServiceConfig(default_artifact_root=root.as_uri())
    gate = TransferGate()
    servicer = ArtifactsServicer(ArtifactsDomain(policy_for(config)), gate)
    service = ServedService(
        name=SERVICE_NAME,
        register=lambda server: pb_grpc.add_ArtifactsServiceServicer_to_server(servicer, server),
        server_options=BULK_SERVER_OPTIONS,
    )
    running = start_server([service])
    channel = grpc.insecure_channel(running.address)
    yield pb_grpc.ArtifactsServiceStub(channel), root, gate
    channel.close()
    running.stop(0)


def test_a_transfer_past_the_limit_waits_then_is_refused_naming_the_setting(
    one_slot_service,
) -> None:
    stub, root, gate = one_slot_service
    uri = (root / "run").as_uri()
    release = threading.Event()

    def slow_upload():
        yield pb.UploadArtifactRequest(artifact_uri=uri, path="slow.bin", data=b"a" * 1024)
        release.wait(10)
        yield pb.UploadArtifactRequest(data=b"b", last=True)

    holder = stub.UploadArtifact.future(slow_upload(), timeout=20)
    try:
        # The slot is taken (the first upload is inside the service, waiting for its bytes).
        deadline = time.monotonic() + 5
        while gate.in_use == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.in_use == 1
        with pytest.raises(grpc.RpcError) as info:
            stub.UploadArtifact(
                iter(
                    [
                        pb.UploadArtifactRequest(
                            artifact_uri=uri, path="next.bin", data=b"x", last=True
                        )
                    ]
                ),
                timeout=10,
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "MLGRID_ARTIFACTS_MAX_TRANSFERS" in (info.value.details() or "")
        assert not (root / "run" / "next.bin").exists()
    finally:
        release.set()
    assert holder.result().file.file_size == 1025
    # The slot is free again: the next upload goes through.
    stub.UploadArtifact(
        iter([pb.UploadArtifactRequest(artifact_uri=uri, path="next.bin", data=b"x", last=True)])
    )
    assert (root / "run" / "next.bin").read_bytes() == b"x"


@pytest.mark.slow
def test_sixteen_concurrent_60_mib_uploads_keep_the_service_memory_bounded() -> None:
    figures = measure(uploads=16, mib=60)
    assert figures["errors"] == 0 and figures["all_files_whole"]
    assert figures["peak_rss_growth_mib"] < 200, figures
