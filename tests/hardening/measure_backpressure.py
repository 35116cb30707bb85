"""Memory of the artifacts service under many concurrent large uploads (docs/hardening.md).

    .venv/bin/python tests/hardening/measure_backpressure.py [--uploads 16] [--mib 60]

Starts the artifacts service in a process of its own (tests/artifacts/serve_artifacts.py),
uploads ``--uploads`` files of ``--mib`` MiB at once through the SDK, and prints the service's
RSS growth at its peak and once the uploads are done, and that every file arrived whole.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "artifacts"))

from measure import MiB, RssWatcher, service_process  # noqa: E402


def measure(uploads: int, mib: int) -> dict[str, float | int | bool]:
    from mlgrid.artifacts import transfer
    from mlgrid.transport import Transport

    scratch = Path(tempfile.mkdtemp(prefix="mlgrid-backpressure-"))
    root = scratch / "root"
    root.mkdir()
    source = scratch / "big.bin"
    block = os.urandom(MiB)
    with source.open("wb") as handle:
        for _ in range(mib):
            handle.write(block)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with service_process(root) as (target, pid):
        import psutil

        transport = Transport(f"grpc://{target}")
        uri = (root / "run").as_uri()
        errors: list[BaseException] = []

        def upload(index: int) -> None:
            try:
                transfer.upload_file(transport, uri, source, f"f{index}.bin")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(uploads)]
        started = time.perf_counter()
        with RssWatcher(pid) as watcher:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        elapsed = time.perf_counter() - started
        time.sleep(1.0)
        after = psutil.Process(pid).memory_info().rss
        transport.close()
        whole = all(
            hashlib.sha256((root / "run" / f"f{i}.bin").read_bytes()).hexdigest() == digest
            for i in range(uploads)
        )
    return {
        "uploads": uploads,
        "mib_each": mib,
        "seconds": round(elapsed, 1),
        "peak_rss_growth_mib": round(watcher.growth_mib, 1),
        "rss_growth_after_mib": round((after - watcher.baseline) / MiB, 1),
        "errors": len(errors),
        "all_files_whole": whole,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=16)
    parser.add_argument("--mib", type=int, default=60)
    args = parser.parse_args()
    print(json.dumps(measure(args.uploads, args.mib), indent=2))


if __name__ == "__main__":
    main()
