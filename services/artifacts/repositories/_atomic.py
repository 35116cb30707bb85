"""Crash-safe, fast local writes: temp file in the same directory, fsync, rename.

Large streams are written by a second thread, so receiving (and hashing) the next chunk overlaps
with writing the previous one; the queue between them is bounded, so memory stays flat. While
writing, the kernel is asked to start writeback early (``sync_file_range``) so the final fsync
has little left to flush.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

#: Chunks in flight between the receiving thread and the writer (each ≈ 1 MiB).
QUEUE_DEPTH = 8
#: Start writeback of what was written every this many bytes.
WRITEBACK_EVERY = 16 * 1024 * 1024
_FILE_MODE = 0o644
_SYNC_FILE_RANGE_WRITE = 2


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


class _Writer:
    """Writes chunks to ``fd`` and starts writeback as it goes."""

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


_DONE = object()


def _pipe(chunks: Iterable[bytes], writer: _Writer, first: bytes, second: bytes) -> None:
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
    fd, temp_name = tempfile.mkstemp(prefix=".mlgrid-tmp-", dir=target.parent)
    writer = _Writer(fd)
    try:
        iterator = iter(chunks)
        first = next(iterator, b"")
        second = next(iterator, None)
        if second is None:  # small file: no thread needed
            writer.write(first)
        else:
            _pipe(iterator, writer, first, second)
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
    return writer.size
