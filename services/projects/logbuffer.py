"""A run's output, kept in memory (bounded) for clients that stream it, now or later.

Chunks are numbered from 0 for the life of the run; when the buffer exceeds its budget the
oldest chunks are dropped and a reader that falls behind is told how much it missed, so a
chatty run cannot exhaust the service's memory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["LogBuffer", "LogEntry"]

#: Bytes kept per run (MLGRID_PROJECTS_LOG_BYTES overrides it in the service config).
DEFAULT_BUDGET = 8 * 1024 * 1024


@dataclass(frozen=True)
class LogEntry:
    """One chunk of output."""

    #: "stdout", "stderr" or "system".
    stream: str
    data: bytes
    #: Milliseconds since the epoch.
    timestamp: int


class LogBuffer:
    """Append-only, bounded, with blocking reads for followers."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self._budget = budget
        self._entries: list[LogEntry] = []
        self._first = 0  # number of the oldest entry kept
        self._size = 0
        self._closed = False
        self._cond = threading.Condition()

    def append(self, stream: str, data: bytes) -> None:
        if not data:
            return
        entry = LogEntry(stream=stream, data=data, timestamp=int(time.time() * 1000))
        with self._cond:
            self._entries.append(entry)
            self._size += len(data)
            while self._size > self._budget and len(self._entries) > 1:
                dropped = self._entries.pop(0)
                self._size -= len(dropped.data)
                self._first += 1
            self._cond.notify_all()

    def system(self, text: str) -> None:
        """A message of the runner itself."""
        self.append("system", text.encode("utf-8"))

    def close(self) -> None:
        """No more output will come (the run ended)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def tail(self, stream: str, limit: int) -> bytes:
        """The last ``limit`` bytes kept of one stream (to tell why a run failed)."""
        with self._cond:
            chunks: list[bytes] = []
            size = 0
            for entry in reversed(self._entries):
                if entry.stream == stream:
                    chunks.append(entry.data)
                    size += len(entry.data)
                    if size >= limit:
                        break
        return b"".join(reversed(chunks))[-limit:]

    def read(self, position: int, wait: float = 0.0) -> tuple[list[LogEntry], int, bool]:
        """Entries from ``position`` on, the next position, and whether the log is complete.

        With ``wait`` > 0, blocks up to that long for new output when there is none yet.
        Entries dropped before a slow reader got them are replaced by one system entry.
        """
        with self._cond:
            if wait > 0 and position >= self._first + len(self._entries) and not self._closed:
                self._cond.wait(wait)
            out: list[LogEntry] = []
            if position < self._first:
                missed = self._first - position
                out.append(
                    LogEntry(
                        "system",
                        f"[mlgrid: {missed} earlier output chunk(s) dropped: log buffer full]\n".encode(),
                        int(time.time() * 1000),
                    )
                )
                position = self._first
            out.extend(self._entries[position - self._first :])
            end = self._first + len(self._entries)
            # Closed is read under the same lock as the entries: nothing can follow them.
            return out, end, self._closed
