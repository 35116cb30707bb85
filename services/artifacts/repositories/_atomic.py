"""Crash-safe, fast local writes: temp file in the same directory, fsync, rename, fsync the
directory.

Large streams are written by a second thread, so receiving (and hashing) the next chunk overlaps
with writing the previous one; the queue between them is bounded, so memory stays flat. While
writing, the kernel is asked to start writeback early (``sync_file_range``) so the final fsync
has little left to flush; or, where it is switched on, they are written with direct I/O (see
``_direct``).

What a crash can lose: nothing that was acknowledged. The file's bytes are fsynced before the
rename, so its name never points at a partial file; the directory is fsynced after the rename,
so once the upload has returned the name survives a power loss too. A crash before that leaves
at most a hidden ``.mlgrid-tmp-*`` file, never a half-written artifact; the service removes such
files at start and on a timer (``orphans.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import queue
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from ._direct import DirectWriter, direct_io_enabled

#: Chunks in flight between the receiving thread and the writer (each ≈ 1 MiB).
QUEUE_DEPTH = 8
#: Start writeback of what was written every this many bytes.
WRITEBACK_EVERY = 16 * 1024 * 1024
_FILE_MODE = 0o644
_SYNC_FILE_RANGE_WRITE = 2
TEMP_PREFIX = ".mlgrid-tmp-"


def _writeback_starter() -> Callable[[int, int, int], None]:
    """``sync_file_range(fd, offset, n, WRITE)`` on Linux; a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return lambda fd, offset, length: None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]

    def start(fd: int, offset: int, length: int) -> None:
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

    return start


_start_writeback = _writeback_starter()


def start_writeback(fd: int) -> None:
    """Asks the kernel to start writing ``fd``'s dirty pages now (returns at once)."""
    _start_writeback(fd, 0, 0)


@lru_cache(maxsize=1)
def this_host() -> str:
    """A short, name-safe tag of this host, put in temp names with the writer's pid so that
    the sweeper (``orphans.py``) can tell a dead writer's file from a live one's."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def parse_temp_name(name: str) -> tuple[str, int] | None:
    """(host tag, pid) of a temp file's writer; None for a name in another form."""
    parts = name[len(TEMP_PREFIX) :].split("-") if name.startswith(TEMP_PREFIX) else []
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def create_temp(directory: Path | str) -> tuple[int, str]:
    """A new, empty hidden temp file in ``directory``: (fd open for writing, its path). Its name
    is ``.mlgrid-tmp-<host>-<pid>-<random>``."""
    writer = f"{this_host()}-{os.getpid()}"
    for _ in range(100):
        name = os.path.join(directory, f"{TEMP_PREFIX}{writer}-{secrets.token_hex(8)}")
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        return fd, name
    raise FileExistsError(f"no free temp file name in {directory}")


def sync_directory(directory: Path | str) -> None:
    """Makes the names just created or renamed in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _StreamWriter(Protocol):
    size: int

    def write(self, chunk: bytes | memoryview) -> None: ...

    def finish(self) -> None: ...

    def release(self) -> None: ...


class _Writer:
    """Writes chunks to ``fd`` through the page cache and starts writeback as it goes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self._flushed = 0

    def write(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(chunk)
        if self.size - self._flushed >= WRITEBACK_EVERY:
            _start_writeback(self.fd, self._flushed, self.size - self._flushed)
            self._flushed = self.size

    def finish(self) -> None:
        return  # nothing staged

    def release(self) -> None:
        return  # nothing held


_DONE = object()


def _pipe(chunks: Iterable[bytes], writer: _StreamWriter, first: bytes, second: bytes) -> None:
    """Writes ``first``, ``second`` and the rest of ``chunks`` on a second thread."""
    pending: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            while (chunk := pending.get()) is not _DONE:
                if not failure:
                    writer.write(chunk)  # type: ignore[arg-type]
        except BaseException as exc:  # disk full, …: reported to the receiving thread
            failure.append(exc)
            while pending.get() is not _DONE:
                pass

    thread = threading.Thread(target=drain, name="artifact-writer", daemon=True)
    thread.start()
    try:
        pending.put(first)
        pending.put(second)
        for chunk in chunks:
            if failure:
                break
            pending.put(chunk)
    finally:
        pending.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]


def write_atomically(target: Path, chunks: Iterable[bytes]) -> int:
    """Streams ``chunks`` to ``target`` so that it appears whole or not at all; returns the size.

    If iterating ``chunks`` raises, the temp file is removed and the exception propagates.
    """
    fd, temp_name = create_temp(target.parent)
    writer: _StreamWriter = _Writer(fd)
    try:
        iterator = iter(chunks)
        first = next(iterator, b"")
        second = next(iterator, None)
        if second is None:  # small file: no thread needed
            writer.write(first)
        else:
            writer = DirectWriter(fd) if direct_io_enabled() else writer
            _pipe(iterator, writer, first, second)
            writer.finish()
        os.fchmod(fd, _FILE_MODE)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp_name, target)
    except BaseException:
        # The client went away or a check failed: leave nothing behind.
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    finally:
        writer.release()
    sync_directory(target.parent)
    return writer.size
