"""Many small files stored at once, each crash-safe, for a fraction of the per-file cost.

Storing one file costs a temp file, a write, an fsync and a rename. Done file by file on many
threads (as before), the fsyncs overlap but the threads fight over the GIL and over the
directory's lock, and the CPU goes to switching and spinning between them. Here one thread works
through a group: create and write every temp file, ask the kernel to start writing all of them
back, fsync each (by then most of the writing is done; on a journalling file system the first
fsync also commits the others' metadata), rename each, and fsync each directory once at the end.
Every file still reaches its name only after its own fsync. Creating and renaming, the steps
that take the directory's lock, run one batch at a time in the process: concurrent batches
would only spin on that lock, while their fsyncs (waits on the disk) still overlap.

If anything fails before the renames, every temp file of the group is removed and nothing of it
appears; files of earlier groups (and of the same group already renamed) stay, each whole.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from ._atomic import create_temp, start_writeback, sync_directory

#: Files open at once (well under the usual 1,024 descriptors per process).
GROUP_FILES = 128
_FILE_MODE = 0o644
#: Held while creating or renaming a group's files (see the module docstring).
_NAMING = threading.Lock()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _discard(temps: list[tuple[int, str]]) -> None:
    for fd, name in temps:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _store_group(group: Sequence[tuple[Path, bytes]]) -> None:
    temps: list[tuple[int, str]] = []
    try:
        with _NAMING:
            for target, data in group:
                fd, name = create_temp(target.parent)
                temps.append((fd, name))
                _write_all(fd, data)
                os.fchmod(fd, _FILE_MODE)
        for fd, _ in temps:
            start_writeback(fd)
        for fd, _ in temps:
            os.fsync(fd)
        for index, (fd, name) in enumerate(temps):
            os.close(fd)
            temps[index] = (-1, name)
    except BaseException:
        _discard(temps)
        raise
    with _NAMING:
        for index, ((_, name), (target, _)) in enumerate(zip(temps, group, strict=True)):
            try:
                os.replace(name, target)
            except BaseException:
                _discard(temps[index:])
                raise


def store_small_files(files: Sequence[tuple[Path, bytes]]) -> None:
    """Stores ``data`` at each ``target`` (parents must exist): fsync, rename, fsync dirs."""
    for start in range(0, len(files), GROUP_FILES):
        _store_group(files[start : start + GROUP_FILES])
    for directory in dict.fromkeys(target.parent for target, _ in files):
        sync_directory(directory)
