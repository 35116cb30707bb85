"""The gRPC call a thread is serving, so that work it started below (SQL statements) ends with it.

When a client gives up (cancels, disconnects) or its deadline passes, gRPC ends the call at
once, but the worker thread goes on with whatever it was doing: a slow query kept PostgreSQL
busy for 52 s after the client's deadline. Every call therefore gets a :class:`CallScope` (set
by the error-mapping interceptor, which wraps every handler); code that starts something
cancellable registers how to cancel it for the time it runs (:func:`cancellable`), and the
scope cancels it when gRPC reports the end of the call. The SQL layers register each
statement's connection (``PgCursors``, the SQLAlchemy engines of ``sql.make_engine``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

from mlgrid.exceptions import TemporarilyUnavailable

log = logging.getLogger(__name__)


class CallEnded(TemporarilyUnavailable):
    """Work refused because its call has ended; the client is gone and never sees it."""


class CallScope:
    """One call's cancellable work. ``end`` is gRPC's termination callback."""

    __slots__ = ("_cancels", "_lock", "ended")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancels: dict[int, Callable[[], None]] = {}
        #: True once gRPC has ended the call (answered, cancelled, or past its deadline).
        self.ended = False

    def register(self, token: int, cancel: Callable[[], None]) -> bool:
        """Keeps ``cancel`` until :meth:`unregister`; False when the call has already ended."""
        with self._lock:
            if self.ended:
                return False
            self._cancels[token] = cancel
            return True

    def unregister(self, token: int) -> None:
        with self._lock:
            self._cancels.pop(token, None)

    def end(self) -> None:
        """Cancels whatever is still running for the call (gRPC's thread calls this)."""
        with self._lock:
            self.ended = True
            cancels = list(self._cancels.values())
            self._cancels.clear()
        for cancel in cancels:
            try:
                cancel()
            except Exception:  # a connection that broke meanwhile: nothing left to cancel
                log.debug("cancelling work of an ended call failed", exc_info=True)


_current: ContextVar[CallScope | None] = ContextVar("mlgrid_call_scope", default=None)
_tokens = itertools.count()


def current() -> CallScope | None:
    """The scope of the call this thread serves, if any."""
    return _current.get()


@contextmanager
def serving(context: object) -> Iterator[CallScope]:
    """Runs a handler inside a new scope, ended by gRPC when the call ends."""
    scope = CallScope()
    add_callback = getattr(context, "add_callback", None)
    if add_callback is not None and not add_callback(scope.end):
        scope.ended = True  # the call had already ended before the handler started
    reset = _current.set(scope)
    try:
        yield scope
    finally:
        # A response stream closed from another thread has lost its context: nothing to reset.
        with suppress(ValueError):
            _current.reset(reset)


def call_ended() -> bool:
    """True when the call this thread serves has ended (its client is no longer waiting)."""
    scope = _current.get()
    return scope is not None and scope.ended


@contextmanager
def cancellable(cancel: Callable[[], None]) -> Iterator[None]:
    """Registers ``cancel`` with the current call for the block; outside a call, nothing."""
    scope = _current.get()
    if scope is None:
        yield
        return
    token = next(_tokens)
    if not scope.register(token, cancel):
        raise CallEnded("the call ended (cancelled, or past its deadline) before this work began")
    try:
        yield
    finally:
        scope.unregister(token)


def register_for_call(cancel: Callable[[], None]) -> Callable[[], None]:
    """Like :func:`cancellable` for work whose start and end are seen in different places (a
    pool's checkout and checkin); returns the function that unregisters it. It never raises
    (a pool's checkout must not), so work of an ended call is left to run."""
    scope = _current.get()
    if scope is None:
        return _nothing
    token = next(_tokens)
    if not scope.register(token, cancel):
        return _nothing  # already over: the statements that follow fail through cancellable
    return lambda: scope.unregister(token)


def _nothing() -> None:
    return None
