"""``mlgrid server gateway`` as a real process: it routes, and SIGTERM stops it gracefully."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_backends import Backend, start_artifacts

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as art_grpc
from mlgrid_services.stack import READY, parse_line


@pytest.fixture(scope="module")
def files() -> Iterator[Backend]:
    backend = start_artifacts("files", ["file"])
    yield backend
    backend.stop()


def start_gateway_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Starts ``mlgrid server gateway --port 0 ...``; returns it and the address it bound."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlgrid.cli.main", "server", "gateway", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    parsed = parse_line(line)
    if parsed is None or parsed[0] != READY:
        proc.kill()
        pytest.fail(f"the gateway did not report ready: {line!r} (exit code {proc.wait()})")
    return proc, parsed[1]["address"]


def test_sigterm_lets_the_call_in_flight_finish_then_exits(files: Backend) -> None:
    proc, address = start_gateway_process("--backend", files.address, "--grace", "5")
    outcome: dict[str, object] = {}
    with grpc.insecure_channel(address) as channel:
        stub = art_grpc.ArtifactsServiceStub(channel)

        def slow_call() -> None:
            request = art.ListArtifactsRequest(artifact_uri="file:///r", path="slow:1.0")
            outcome["response"] = stub.ListArtifacts(request, timeout=10)

        caller = threading.Thread(target=slow_call)
        caller.start()
        deadline = time.monotonic() + 5
        while not any(s.method == "ListArtifacts" for s in files.recorder.seen):
            assert time.monotonic() < deadline, "the slow call never reached the backend"
            time.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        caller.join(timeout=10)
        assert proc.wait(timeout=10) == 0
        stopped_after = time.monotonic() - sent
    response = outcome["response"]
    assert isinstance(response, art.ListArtifactsResponse)
    assert response.files[0].path == "files:file:///r"
    # It waited for the call (about 1 s), not for the whole grace period.
    assert stopped_after < 4.0


def test_routes_from_the_config_file_option(tmp_path: Path, files: Backend) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        json.dumps(
            {"backends": [{"service": "artifacts", "scheme": "s3", "address": files.address}]}
        )
    )
    proc, address = start_gateway_process("--config", str(routes))
    try:
        with grpc.insecure_channel(address) as channel:
            response = art_grpc.ArtifactsServiceStub(channel).ListArtifacts(
                # Generous: the first call also connects the gateway to the backend, which
                # can take seconds on a loaded 2-core CI machine.
                art.ListArtifactsRequest(artifact_uri="s3://bucket/k"),
                timeout=30,
            )
        assert response.files[0].path == "files:s3://bucket/k"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_malformed_config_file_stops_the_gateway_with_the_reason(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("backends: [{service: artifacts, scheme: s3}]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlgrid.cli.main",
            "server",
            "gateway",
            "--port",
            "0",
            "--config",
            str(routes),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "backends[0]: 'address' must be a non-empty" in result.stderr


@pytest.mark.parametrize(("extra", "tunnelled"), [((), True), (("--no-tunnel",), False)])
def test_the_gateway_process_announces_its_tunnel_port(
    extra: tuple[str, ...], tunnelled: bool
) -> None:
    from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc

    proc, address = start_gateway_process(*extra)
    try:
        with grpc.insecure_channel(address) as channel:
            info = common_pb2_grpc.BackendInfoServiceStub(channel).GetBackendInfo(
                common_pb2.GetBackendInfoRequest(), timeout=10
            )
        # With --port 0 the tunnel listener takes any free port too (never the fixed 50050).
        assert (info.tunnel_port not in (0, 50050)) if tunnelled else info.tunnel_port == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
