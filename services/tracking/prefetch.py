"""Reading a stream's next items while the caller handles the current one.

A streamed metric history is a loop of "ask the database for the next chunk, send it": done in
one thread, the database idles while a chunk is sent and the sender idles while the database
works. Here the database loop runs in its own thread (the driver releases the GIL while it
waits on the socket), a small bounded queue between the two, so a long history takes about the
longer of the two halves, not their sum, and memory stays at ``depth`` chunks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
#: How often a blocked producer looks whether the consumer went away (a cancelled stream).
_POLL_SECONDS = 0.5


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` in order, produced in a thread up to ``depth`` ahead of the consumer.

    The producer's exception is raised to the consumer at its place in the stream. When the
    consumer stops early (the generator is closed: a cancelled call), the producer stops at
    its next item and closes ``items``, which releases its database connection."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(item: object) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="history-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]  # every other item is a T from `items`
    finally:
        stopped.set()
        producer.join()
