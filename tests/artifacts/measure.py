"""Measures the artifacts service on the file backend, the way issue 3's benchmark asks.

    .venv/bin/python tests/artifacts/measure.py [--target HOST:PORT --root DIR
                                                 [--service-pid PID]] [--repeat 3]

Without ``--target`` it starts the artifacts service in a process of its own (so its memory can
be watched) on a temp directory. Figures: one 200 MiB file up and down through the service,
500 files of 4 KiB in one log_artifacts call, listing that 500-entry directory (p50), and the
service's peak RSS growth during a 200 MiB transfer. The bench helper can call
:func:`measure_artifacts` and get the same figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

MiB = 1024 * 1024
HERE = Path(__file__).resolve().parent


@dataclass
class ArtifactFigures:
    upload_mib_s: float
    download_mib_s: float
    small_files_per_s: float
    list_p50_ms: float
    peak_rss_growth_mib: float
    large_file_mib: int
    small_files: int


@contextmanager
def service_process(root: Path) -> Iterator[tuple[str, int]]:
    """The artifacts service alone in a child process: (target, pid)."""
    child = subprocess.Popen(
        [
            sys.executable,
            *os.environ.get("SERVE_PREFIX", "").split(),
            str(HERE / "serve_artifacts.py"),
            str(root),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port, pid = child.stdout.readline().split()
        yield f"127.0.0.1:{port}", int(pid)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class RssWatcher:
    """Samples a process's RSS every few milliseconds; reports the peak over a baseline."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> RssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


def _write_random(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as handle:
        for offset in range(0, size, MiB):
            handle.write(block[: min(MiB, size - offset)])


def measure_artifacts(
    target: str | None = None,
    root: Path | None = None,
    service_pid: int | None = None,
    large_mib: int = 200,
    small_files: int = 500,
    repeat: int = 3,
    workdir: Path | None = None,
) -> ArtifactFigures:
    """Runs the measurements against ``target`` (an artifacts service or a gateway whose
    default artifact root is ``root``), or against a service of its own when ``target`` is None."""
    from mlgrid.artifacts import transfer
    from mlgrid.transport import Transport

    scratch = Path(workdir or tempfile.mkdtemp(prefix="mlgrid-measure-"))
    if target is None:
        service_root = scratch / "artifact-root"
        service_root.mkdir(parents=True, exist_ok=True)
        with service_process(service_root) as (own_target, pid):
            return measure_artifacts(
                own_target, service_root, pid, large_mib, small_files, repeat, scratch
            )
    assert root is not None, "root (the service's artifact root) goes with target"
    transport = Transport(f"grpc://{target}")
    uri = (root / f"measure-{uuid.uuid4().hex[:8]}").resolve().as_uri()
    big = scratch / "big.bin"
    _write_random(big, large_mib * MiB)
    ups, downs, growth = [], [], 0.0
    for attempt in range(repeat):
        watcher = RssWatcher(service_pid) if service_pid else None
        with watcher or _nothing():
            start = time.perf_counter()
            transfer.upload_file(transport, uri, big, "big.bin")
            ups.append(large_mib / (time.perf_counter() - start))
            local = scratch / f"back-{attempt}.bin"
            start = time.perf_counter()
            transfer.download(transport, uri, "big.bin", local)
            downs.append(large_mib / (time.perf_counter() - start))
        local.unlink()
        if watcher is not None:
            growth = max(growth, watcher.growth_mib)
    small_dir = scratch / "small"
    small_dir.mkdir(exist_ok=True)
    payload = os.urandom(4096)
    for index in range(small_files):
        (small_dir / f"f{index:04d}.bin").write_bytes(payload)
    rates = []
    for attempt in range(repeat):
        start = time.perf_counter()
        transfer.upload_dir(transport, uri, small_dir, f"small-{attempt}")
        rates.append(small_files / (time.perf_counter() - start))
    latencies = []
    for _ in range(200):
        start = time.perf_counter()
        listed = transfer.list_artifacts(transport, uri, "small-0")
        latencies.append((time.perf_counter() - start) * 1000)
    assert len(listed) == small_files
    transport.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return ArtifactFigures(
        upload_mib_s=round(statistics.median(ups), 1),
        download_mib_s=round(statistics.median(downs), 1),
        small_files_per_s=round(statistics.median(rates), 1),
        list_p50_ms=round(statistics.median(latencies), 2),
        peak_rss_growth_mib=round(growth, 1),
        large_file_mib=large_mib,
        small_files=small_files,
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="host:port of an artifacts service or gateway")
    parser.add_argument("--root", type=Path, help="its default artifact root (with --target)")
    parser.add_argument("--service-pid", type=int, help="pid of the artifacts service (RSS)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--large-mib", type=int, default=200)
    args = parser.parse_args()
    figures = measure_artifacts(
        args.target, args.root, args.service_pid, args.large_mib, 500, args.repeat
    )
    print(json.dumps(asdict(figures), indent=2))


if __name__ == "__main__":
    main()
