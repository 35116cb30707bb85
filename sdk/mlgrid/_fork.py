"""Forking a process that uses the SDK (``multiprocessing``'s default start method on Linux,
DataLoader workers, a pre-forking server).

gRPC's core prepares itself for a fork (stops its pollers, resets them in the child) only when
no other thread is inside it at that moment; otherwise it skips that step, and the child inherits
its state mid-flight and can crash, even a child that never calls gRPC. Between calls the SDK's
blocking calls leave no thread in gRPC, but two things it uses can: a call pipeline's open stream
on grpcio's public API (its event loop and request reader run as long as it is open; a stream run
on the caller's thread, the default, has none, but is ended all the same so that the child
inherits no call) and the connectivity watch that sets up a tunnel (its poller lives up to 0.2 s
after the watch ends). Before a fork this module ends the streams and waits for those threads, at
most ``FORK_WAIT_S`` in all.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

#: The most a fork waits for gRPC's threads to leave it; past that it forks as it would have.
FORK_WAIT_S = 1.0

#: Each ends what it can by the given monotonic time and returns the threads to wait for.
_enders: list[Callable[[float], Iterable[threading.Thread]]] = []
#: Threads that end on their own shortly (a finished connectivity watch's poller).
_ending: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@contextmanager
def threads_started() -> Iterator[set[threading.Thread]]:
    """Collects the threads started while the block runs (by gRPC, for the SDK's call)."""
    before = set(threading.enumerate())
    started: set[threading.Thread] = set()
    try:
        yield started
    finally:
        started.update(set(threading.enumerate()) - before)


def await_before_fork(threads: Iterable[threading.Thread]) -> None:
    """A fork waits for ``threads``, which end on their own, before it happens."""
    _ending.update(threads)


def end_before_fork(ender: Callable[[float], Iterable[threading.Thread]]) -> None:
    """A fork first calls ``ender(until)``, then waits for the threads it returns."""
    _enders.append(ender)


def _before_fork() -> None:
    until = time.monotonic() + FORK_WAIT_S
    threads = set(_ending)
    for ender in _enders:
        threads.update(ender(until))
    threads.discard(threading.current_thread())
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()))


os.register_at_fork(before=_before_fork)
