"""Removes temp files that a killed writer left behind (``.mlgrid-tmp-*``), at start and on a
timer.

Uploads are written to a hidden temp file next to their destination and renamed when whole
(``repositories/_atomic.py``). A process killed mid-upload leaves the temp file: hidden from every
listing, never served, but taking disk (0.7 GB after one kill -9 in a probe). Temp names carry
the writer's host and pid, so a file whose writer on this host is gone is removed at once; a
file from another host (a shared volume) or from a live pid is removed once it has not been
written for :data:`ORPHAN_AGE_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .repositories._atomic import TEMP_PREFIX, parse_temp_name, this_host

log = logging.getLogger(__name__)

#: A temp file not written for this long has no writer left (uploads write every chunk).
ORPHAN_AGE_SECONDS = 3600.0
#: Seconds between sweeps (``MLGRID_ARTIFACTS_SWEEP_INTERVAL``).
SWEEP_INTERVAL_SECONDS = 3600.0


@dataclass
class SweepResult:
    files: int = 0
    bytes: int = 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphan(path: Path, now: float, age: float = ORPHAN_AGE_SECONDS) -> bool:
    """True when the temp file at ``path`` has no live writer."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return False
    writer = parse_temp_name(path.name)
    if writer is not None and writer[0] == this_host() and not _pid_alive(writer[1]):
        return True
    return now - modified > age


def sweep(roots: Iterable[Path], age: float = ORPHAN_AGE_SECONDS) -> SweepResult:
    """Removes orphaned temp files below ``roots``; returns what it removed."""
    result = SweepResult()
    now = time.time()
    for root in roots:
        if not root.is_dir():
            continue
        for directory, _dirs, files in os.walk(root):
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(directory) / name
                if not is_orphan(path, now, age):
                    continue
                try:
                    size = path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                result.files += 1
                result.bytes += size
    if result.files:
        log.info(
            "removed %d orphaned temp files (%.1f MiB) left by killed uploads",
            result.files,
            result.bytes / 2**20,
        )
    return result


class OrphanSweeper:
    """Sweeps ``roots`` once now and then every ``interval`` seconds, on a daemon thread."""

    def __init__(self, roots: list[Path], interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        self.roots = roots
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="artifact-sweeper", daemon=True)
        #: Set after the first sweep (tests wait on it).
        self.first_sweep_done = threading.Event()

    def start(self) -> OrphanSweeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                sweep(self.roots)
            except Exception:  # a root that vanished or cannot be read: try again next time
                log.warning("sweeping orphaned temp files failed", exc_info=True)
            self.first_sweep_done.set()
            if self._stop.wait(self.interval):
                return

    def close(self) -> None:
        self._stop.set()
