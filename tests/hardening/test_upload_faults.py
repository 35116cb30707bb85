"""kill -9 of the artifacts service in the middle of uploads, and SIGTERM during a long one.

After a kill nothing half-written is visible (no artifact under its name, nothing listed), and
the hidden temp file the writer left is removed when the service starts again; the uploads that
were acknowledged are whole. SIGTERM lets an upload in flight finish within the grace period.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as pb_grpc
from mlgrid_services.artifacts.orphans import sweep
from mlgrid_services.artifacts.repositories._atomic import TEMP_PREFIX, this_host
from mlgrid_services.stack import READY, parse_line

CHUNK = b"z" * (256 * 1024)


class ServiceProcess:
    """``mlgrid server artifacts`` (as deployments run it) on port 0 with ``root`` as its
    default artifact root."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlgrid.cli.main", "server", "artifacts",
                "--host", "127.0.0.1", "--port", "0", "--grace", "10",
                "--default-artifact-root", root.as_uri(),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parsed = parse_line(line)
            if parsed is not None and parsed[0] == READY:
                address = parsed[1]["address"]
                break
        else:
            raise AssertionError("mlgrid server artifacts exited before it served")
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.ArtifactsServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*") if p.is_file()]


def _slow_upload(
    uri: str, path: str, started: threading.Event
) -> Iterator[pb.UploadArtifactRequest]:
    yield pb.UploadArtifactRequest(artifact_uri=uri, path=path, data=CHUNK)
    for _ in range(400):  # 100 MiB at most; the service is killed long before
        started.set()
        time.sleep(0.01)
        yield pb.UploadArtifactRequest(data=CHUNK)
    yield pb.UploadArtifactRequest(last=True)


def test_kill_9_mid_upload_leaves_nothing_visible_and_the_restart_removes_the_temp_file(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    uri = (root / "run").as_uri()
    service = ServiceProcess(root)
    try:
        acknowledged = service.stub.UploadArtifact(
            iter(
                [pb.UploadArtifactRequest(artifact_uri=uri, path="done.bin", data=b"ok", last=True)]
            )
        )
        assert acknowledged.file.file_size == 2
        started = threading.Event()
        future = service.stub.UploadArtifact.future(_slow_upload(uri, "big.bin", started))
        assert started.wait(10)
        deadline = time.monotonic() + 10
        while not _temp_files(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = _temp_files(root)
        assert leftovers, "the upload never reached the disk"
        os.kill(service.proc.pid, signal.SIGKILL)
        service.proc.wait(10)
        assert future.exception(timeout=10) is not None  # the client saw it fail
    finally:
        service.close()
    # Nothing half-written under the artifact's name; the temp file is still there.
    assert not (root / "run" / "big.bin").exists()
    assert all(p.exists() for p in leftovers)
    restarted = ServiceProcess(root)
    try:
        deadline = time.monotonic() + 10
        while _temp_files(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _temp_files(root) == []
        listed = restarted.stub.ListArtifacts(pb.ListArtifactsRequest(artifact_uri=uri))
        assert [f.path for f in listed.files] == ["done.bin"]
        assert (root / "run" / "done.bin").read_bytes() == b"ok"
    finally:
        restarted.close()


def test_sweep_keeps_live_writers_files_and_removes_dead_or_stale_ones(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = this_host()
    keep = tmp_path / f"{TEMP_PREFIX}{host}-{os.getpid()}-aaaa"  # this process is alive
    gone = tmp_path / "sub" / f"{TEMP_PREFIX}{host}-{dead.pid}-bbbb"
    foreign = tmp_path / f"{TEMP_PREFIX}ffffffff-1-cccc"  # another host: by age only
    stale = tmp_path / f"{TEMP_PREFIX}old-style-name"
    artifact = tmp_path / "model.pkl"
    gone.parent.mkdir()
    for path in (keep, gone, foreign, stale, artifact):
        path.write_bytes(b"x" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    result = sweep([tmp_path])
    assert (result.files, result.bytes) == (2, 20)
    assert keep.exists() and foreign.exists() and artifact.exists()
    assert not gone.exists() and not stale.exists()


def test_sigterm_lets_an_upload_in_flight_finish(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    uri = (root / "run").as_uri()
    service = ServiceProcess(root)
    payload = [CHUNK] * 40  # 10 MiB, sent over ~0.4 s

    def upload() -> Iterator[pb.UploadArtifactRequest]:
        yield pb.UploadArtifactRequest(artifact_uri=uri, path="late.bin", data=payload[0])
        for chunk in payload[1:]:
            time.sleep(0.01)
            yield pb.UploadArtifactRequest(data=chunk)
        yield pb.UploadArtifactRequest(last=True)

    try:
        future = service.stub.UploadArtifact.future(upload(), timeout=30)
        time.sleep(0.15)
        service.proc.send_signal(signal.SIGTERM)
        response = future.result(timeout=30)
        assert response.file.file_size == len(CHUNK) * 40
        service.proc.wait(15)
    finally:
        service.close()
    data = (root / "run" / "late.bin").read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(b"".join(payload)).digest()
    assert _temp_files(root) == []
