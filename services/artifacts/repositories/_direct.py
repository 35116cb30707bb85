"""Opt-in (``MLGRID_ARTIFACTS_DIRECT_IO=1``): writing and reading large files around the page
cache (``O_DIRECT``), through an aligned staging buffer.

A buffered ``write`` copies every byte into page-cache pages the kernel allocates for the new
file. On the virtual machines mlgrid runs on, a page the guest has not touched since boot (or
since it was last handed back to the host) costs a fault on the host the first time it is
written, which makes that copy ~3 ms of CPU per MiB instead of ~0.2: then it is most of the
service's CPU for a large upload. With ``O_DIRECT`` the device reads the bytes straight from
one small buffer that is reused (so always resident), and the only CPU copy left is the one
into that buffer. The service fsyncs every upload anyway, so waiting for the disk costs nothing
that buffered writes did not already cost.

Why it is not the default: such a file is not in the page cache afterwards, so a download reads
it from the disk (directly too, a few buffers ahead of the sender on a helper thread, since
reading it buffered would fill new pages the same costly way), where a buffered upload would
have left it cached. Measured through ``mlgrid up``, right after an upload (the benchmark's
order, on a machine whose free pages had been used recently), direct I/O did not make the
upload faster and made the download ~20% slower. It pays off on a long-running service on a
VM with much untouched memory (a 200 MiB upload: ~170 ms of service CPU instead of ~600), and
costs on slow network disks, where the page cache matters most. A cached file is always read
from the cache.

``O_DIRECT`` needs the buffer address, the file offset and the length aligned to the logical
block size; everything but the tail is written that way, the tail with ``O_DIRECT`` cleared.
File systems without it (tmpfs on old kernels, some FUSE ones) refuse it with ``EINVAL``, at the
``fcntl`` or at the first write: the writer then carries on buffered, so the result never differs.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import threading
from collections.abc import Generator, Iterator

from mlgrid import environment as env

#: Alignment of offsets and lengths (covers 512-byte and 4 KiB logical blocks).
ALIGN = 4096
#: Size of the staging buffer, and so of each direct write (a multiple of ALIGN).
BUFFER_BYTES = 4 * 1024 * 1024
#: Files at least this large, and not cached, are read with direct I/O.
DIRECT_READ_MIN = 8 * 1024 * 1024
#: Reads (of BUFFER_BYTES each) a direct read may run ahead of the sender.
READ_AHEAD_BLOCKS = 2
#: Staging buffers kept for reuse: a fresh one costs a page fault per 4 KiB on first use.
_KEPT_BUFFERS = 4
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)

_spare: list[mmap.mmap] = []
_spare_lock = threading.Lock()


def direct_io_enabled() -> bool:
    return bool(_O_DIRECT) and env.MLGRID_ARTIFACTS_DIRECT_IO.get()


def _set_direct(fd: int, direct: bool) -> bool:
    """Turns ``O_DIRECT`` on or off for ``fd``; False when the file system refuses it."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if direct else (flags & ~_O_DIRECT))
    except OSError:
        return False
    return True


def _take_buffer() -> mmap.mmap:
    with _spare_lock:
        if _spare:
            return _spare.pop()
    return mmap.mmap(-1, BUFFER_BYTES)  # anonymous mappings are page-aligned


def _give_back(buffer: mmap.mmap) -> None:
    with _spare_lock:
        if len(_spare) < _KEPT_BUFFERS:
            _spare.append(buffer)
            return
    buffer.close()


class DirectWriter:
    """Writes a stream to ``fd`` (opened for writing at offset 0) with ``O_DIRECT``.

    :meth:`write` takes chunks of any size; :meth:`finish` writes what is still staged and must
    be called before the file is synced; :meth:`release` returns the staging buffer (always call
    it, also after a failure).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self._buffer: mmap.mmap | None = _take_buffer()
        self._view = memoryview(self._buffer)
        self._fill = 0
        # Where it is not supported, the same bytes go through the page cache.
        self.direct = _set_direct(fd, True)

    def write(self, chunk: bytes | memoryview) -> None:
        data = memoryview(chunk)
        self.size += len(data)
        view = self._view
        while data:
            room = BUFFER_BYTES - self._fill
            taken = min(room, len(data))
            view[self._fill : self._fill + taken] = data[:taken]
            self._fill += taken
            data = data[taken:]
            if self._fill == BUFFER_BYTES:
                self._write_out(view)
                self._fill = 0

    def finish(self) -> None:
        """Writes the staged rest: its aligned part directly, the tail through the page cache."""
        aligned = self._fill - self._fill % ALIGN
        if aligned:
            self._write_out(self._view[:aligned])
        if self._fill > aligned:
            self._go_buffered()
            self._write_out(self._view[aligned : self._fill])
        self._fill = 0

    def release(self) -> None:
        if self._buffer is not None:
            self._view.release()
            _give_back(self._buffer)
            self._buffer = None

    def _go_buffered(self) -> None:
        if self.direct:
            if not _set_direct(self.fd, False):
                raise OSError(errno.EINVAL, "cannot turn O_DIRECT off")
            self.direct = False

    def _write_out(self, view: memoryview) -> None:
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._go_buffered()  # accepted by fcntl, refused by the file system
                continue
            view = view[written:]
            if view and written % ALIGN:
                self._go_buffered()  # a short, unaligned write: the offset is no longer aligned


def _is_cached(fd: int) -> bool:
    """True when the file's first page is in the page cache (taken to mean the rest is too)."""
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except (OSError, AttributeError):  # EAGAIN: not cached; or no RWF_NOWAIT here
        return False
    return True


def read_chunks(fd: int, chunk_size: int) -> Iterator[bytes]:
    """The bytes of the file open (for reading, at offset 0) at ``fd``, in chunks of
    ``chunk_size``; closes ``fd`` when done or abandoned."""
    try:
        if (
            os.fstat(fd).st_size >= DIRECT_READ_MIN
            and direct_io_enabled()
            and not _is_cached(fd)
            and _set_direct(fd, True)
        ):
            yield from _read_direct(fd, chunk_size)
        else:
            while chunk := os.read(fd, chunk_size):
                yield chunk
    finally:
        os.close(fd)


def _read_blocks(fd: int, chunk_size: int) -> Generator[list[bytes], None, None]:
    """Each read of the staging buffer, cut into chunks (one copy out of the buffer)."""
    buffer = _take_buffer()
    view = memoryview(buffer)
    direct = True
    try:
        while True:
            try:
                length = os.readv(fd, [view])
            except OSError as exc:
                if exc.errno != errno.EINVAL or not direct or not _set_direct(fd, False):
                    raise
                direct = False  # refused at read time: read buffered from here on
                continue
            if not length:
                return
            yield [
                bytes(view[start : min(length, start + chunk_size)])
                for start in range(0, length, chunk_size)
            ]
            if length % ALIGN and direct:
                # The end of the file, or a short read that left the offset unaligned.
                direct = not _set_direct(fd, False)
    finally:
        view.release()
        _give_back(buffer)


class _ReadAhead:
    """Runs :func:`_read_blocks` on a helper thread, a bounded number of reads ahead, so the
    disk's latency (a direct read never comes from the cache) overlaps with sending."""

    def __init__(self, fd: int, chunk_size: int) -> None:
        self._blocks = _read_blocks(fd, chunk_size)
        self._pending: queue.Queue[list[bytes] | BaseException | None] = queue.Queue(
            READ_AHEAD_BLOCKS
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="artifact-read", daemon=True)
        self._thread.start()

    def _offer(self, item: list[bytes] | BaseException | None) -> bool:
        """Queues ``item``; False once the consumer has gone away."""
        while not self._stop.is_set():
            try:
                self._pending.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for block in self._blocks:
                if not self._offer(block):
                    return
            self._offer(None)
        except BaseException as exc:  # a read error: raised in the consumer
            self._offer(exc)
        finally:
            self._blocks.close()  # returns the staging buffer

    def chunks(self) -> Iterator[bytes]:
        try:
            while (item := self._pending.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            self._stop.set()  # also when the consumer stops early (the client went away)
            self._thread.join()


def _read_direct(fd: int, chunk_size: int) -> Iterator[bytes]:
    return _ReadAhead(fd, chunk_size).chunks()
