"""List-then-watch of one kind of object, as Kubernetes documents it ("efficient detection").

A list gives the current objects and a ``resourceVersion``; a watch from that version gives
every later change. A watch ends now and then (its ``timeoutSeconds``, a dropped connection):
it is resumed from the last version seen. When that version has expired (``410 Gone``) the
objects are listed again. Nothing is polled: between changes the watch simply waits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

__all__ = ["Change", "ResourceWatch"]

log = logging.getLogger(__name__)

#: Seconds a single watch request lasts before it is resumed (server side).
WATCH_SECONDS = 60
#: Longest wait between attempts while the API server cannot be reached.
_MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Change:
    """One event: ``kind`` is "SYNC" (``items`` is everything now), "ADDED", "MODIFIED" or
    "DELETED" (``item`` is the object)."""

    kind: str
    item: Any = None
    items: tuple[Any, ...] = ()


class ResourceWatch:
    """Changes of the objects a list call returns, until :meth:`stop`."""

    def __init__(
        self,
        list_call: Callable[..., Any],
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_unreachable: Callable[[Exception], None] | None = None,
    ) -> None:
        self._list = list_call
        self._namespace = namespace
        self._selectors: dict[str, str] = {}
        if label_selector:
            self._selectors["label_selector"] = label_selector
        if field_selector:
            self._selectors["field_selector"] = field_selector
        self._on_unreachable = on_unreachable or (lambda exc: None)
        self._stopped = threading.Event()
        self._current: watch.Watch | None = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ends :meth:`changes` (from any thread; an open watch is cut)."""
        self._stopped.set()
        with self._lock:
            current = self._current
        if current is not None:
            current.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def changes(self) -> Iterator[Change]:
        version: str | None = None
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                if version is None:
                    listing = self._list(self._namespace, **self._selectors, _request_timeout=30)
                    version = listing.metadata.resource_version
                    yield Change("SYNC", items=tuple(listing.items))
                for kind, item, seen in self._watch(version):
                    version = seen  # a resumed watch starts after the last change seen
                    yield Change(kind, item=item)
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    version = None  # expired: list again
                    continue
                if exc.status in (401, 403, 404):
                    raise
                self._pause(exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self._pause(exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _pause(self, exc: Exception, seconds: float) -> None:
        if self._stopped.is_set():
            return
        log.warning("watch of %s interrupted (%s); resuming", self._namespace, exc)
        self._on_unreachable(exc)
        self._stopped.wait(seconds)

    def _watch(self, version: str) -> Iterator[tuple[str, Any, str]]:
        stream = watch.Watch()
        with self._lock:
            if self._stopped.is_set():
                return
            self._current = stream
        try:
            for event in stream.stream(
                self._list,
                self._namespace,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                **self._selectors,
            ):
                if event["type"] == "ERROR":
                    raw = event.get("raw_object") or {}
                    raise ApiException(
                        status=int(raw.get("code") or 500), reason=raw.get("message")
                    )
                if event["type"] == "BOOKMARK":
                    continue
                version = stream.resource_version or version
                yield event["type"], event["object"], version
                if self._stopped.is_set():
                    return
        finally:
            with self._lock:
                self._current = None
            stream.stop()
