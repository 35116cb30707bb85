"""sha256 of a stream, computed beside it.

hashlib releases the GIL on large buffers, so hashing on a helper thread overlaps with
receiving the next chunk and writing the previous one; a bounded queue keeps memory flat.
Small streams (one chunk) are hashed inline, without a thread.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator

#: Chunks waiting to be hashed (each ≈ 1 MiB).
QUEUE_DEPTH = 4
_DONE = b""


class StreamDigest:
    """Feed a stream through :meth:`feed`; :meth:`hexdigest` once it is exhausted."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes] | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        assert self._queue is not None
        while chunk := self._queue.get():
            self._digest.update(chunk)

    def _start(self) -> queue.Queue[bytes]:
        pending: queue.Queue[bytes] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._queue = pending
        self._thread = threading.Thread(target=self._run, name="artifact-sha256", daemon=True)
        self._thread.start()
        return pending

    def feed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yields ``chunks`` unchanged while hashing them."""
        iterator = iter(chunks)
        first = next(iterator, None)
        if first is None:
            return
        second = next(iterator, None)
        if second is None:
            self._digest.update(first)
            yield first
            return
        pending = self._start()
        try:
            for chunk in (first, second):
                pending.put(chunk)
                yield chunk
            for chunk in iterator:
                if chunk:
                    pending.put(chunk)
                    yield chunk
        finally:
            pending.put(_DONE)

    def hexdigest(self) -> str:
        """The digest of everything fed (waits for the helper thread)."""
        if self._thread is not None:
            self._thread.join()
        return self._digest.hexdigest()
