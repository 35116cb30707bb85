"""A registry of backends keyed by scheme, fed by built-ins and entry points.

Plugins load lazily (the first lookup reads the entry points; a class is imported only when its
scheme is used), override built-ins of the same scheme, and a plugin that fails to import is
recorded with its name and error instead of taking the process down.

Entry points are read through :func:`installed_entry_points`: one scan of the installed
distributions serves every group (each ``importlib.metadata.entry_points(group=...)`` call reads
every distribution's metadata again: ~10 ms each with 170 distributions, and an embedded stack
asks about six groups).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from mlgrid.exceptions import InvalidParameterValue

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUPS: dict[str, str] = {
    "tracking_store": "mlgrid.tracking_store",
    "artifact_repository": "mlgrid.artifact_repository",
    "model_registry_store": "mlgrid.model_registry_store",
    "project_backend": "mlgrid.project_backend",
    "run_context_provider": "mlgrid.run_context_provider",
    "request_header_provider": "mlgrid.request_header_provider",
}


_scan_lock = threading.Lock()
#: (the sys.path state it was read under, group -> entry points) of the last scan.
_last_scan: tuple[tuple[tuple[str, int], ...], dict[str, list[EntryPoint]]] | None = None


def _path_state() -> tuple[tuple[str, int], ...]:
    """sys.path and each folder's modification time: installing or removing a distribution
    adds or removes a folder in one of them, so a change means the scan may be stale."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, -1))
    return tuple(state)


def installed_entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, from a scan of the installed distributions that is kept
    until sys.path or one of its folders changes (a plugin installed meanwhile is then seen)."""
    global _last_scan
    state = _path_state()
    with _scan_lock:
        if _last_scan is None or _last_scan[0] != state:
            by_group: dict[str, list[EntryPoint]] = {}
            for entry in _all_entry_points():
                by_group.setdefault(entry.group, []).append(entry)
            _last_scan = (state, by_group)
        return list(_last_scan[1].get(group, ()))


def _all_entry_points() -> list[EntryPoint]:
    found: Any = entry_points()
    if isinstance(found, dict):
        # Python 3.10/3.11: SelectableGroups, a dict of group -> EntryPoints. dict's own values()
        # (its override warns that the dict interface is deprecated); selecting group by group
        # flattened every group again for each one (~2x the scan's CPU).
        return [entry for group in dict.values(found) for entry in group]
    return list(found)  # Python 3.12+: EntryPoints, every entry point of every group


@dataclass(frozen=True)
class PluginLoadFailure:
    """A plugin that could not be loaded: which one, from where, and why."""

    group: str
    name: str
    value: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.value}) in {self.group} failed to load: {self.error}"


class UnknownSchemeError(InvalidParameterValue):
    """No backend is registered for a scheme; the message lists the schemes that are."""


def _import_object(path: str) -> Any:
    # An entry point's value may end in "[extras]"; they do not change what is imported.
    module_name, _, attribute = path.split("[", 1)[0].strip().partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else []:
        obj = getattr(obj, part)
    return obj


class SchemeRegistry(Generic[T]):
    """Maps a scheme to a backend class: built-ins first, entry points over them."""

    def __init__(
        self,
        group: str,
        kind: str,
        builtins: dict[str, str | type[T]] | None = None,
        *,
        discover: bool = True,
    ):
        #: Entry-point group, e.g. "mlgrid.tracking_store".
        self.group = group
        #: What the backends are, for messages ("tracking store").
        self.kind = kind
        self._targets: dict[str, str | type[T]] = dict(builtins or {})
        self._loaded: dict[str, type[T]] = {}
        self._plugin_schemes: set[str] = set()
        # discover=False: only what is given or registered (``mlgrid plugin serve`` serves
        # exactly the class it was handed, whatever else is installed).
        self._scanned = not discover
        self._lock = threading.Lock()
        #: Plugins that failed to import, by scheme.
        self.failures: dict[str, PluginLoadFailure] = {}

    def register(self, scheme: str, target: str | type[T]) -> None:
        """Registers (or overrides) the backend for ``scheme``; wins over entry points too."""
        with self._lock:
            self._scan()
            self._targets[scheme] = target
            self._loaded.pop(scheme, None)
            self.failures.pop(scheme, None)
            self._plugin_schemes.add(scheme)

    def _scan(self) -> None:
        if self._scanned:
            return
        for entry in installed_entry_points(self.group):
            # Later registrations win over built-ins: a plugin may replace "file". Kept as its
            # "module:attr" value, not the EntryPoint: another metadata finder on sys.path (the
            # importlib_metadata backport, which mlflow imports) yields EntryPoints of its own
            # class, and the value imports the same object either way.
            self._targets[entry.name] = entry.value
            self._loaded.pop(entry.name, None)
            self._plugin_schemes.add(entry.name)
        self._scanned = True

    def schemes(self) -> list[str]:
        """Every scheme with a backend (including plugins not yet imported)."""
        with self._lock:
            self._scan()
            return sorted(self._targets)

    def plugin_schemes(self) -> list[str]:
        """The schemes provided by installed plugins."""
        with self._lock:
            self._scan()
            return sorted(self._plugin_schemes)

    def get(self, scheme: str) -> type[T]:
        """The backend class for ``scheme``; UnknownSchemeError lists the known ones."""
        with self._lock:
            self._scan()
            if scheme in self._loaded:
                return self._loaded[scheme]
            target = self._targets.get(scheme)
            if target is None:
                known = ", ".join(sorted(self._targets)) or "none"
                broken = "".join(f"; {failure}" for failure in self.failures.values())
                raise UnknownSchemeError(
                    f"no {self.kind} is registered for scheme {scheme!r}; known schemes: "
                    f"{known}{broken}"
                )
            try:
                cls = _import_object(target) if isinstance(target, str) else target
            except Exception as exc:
                value = target if isinstance(target, str) else repr(target)
                failure = PluginLoadFailure(
                    self.group, scheme, value, f"{type(exc).__name__}: {exc}"
                )
                self.failures[scheme] = failure
                log.error("%s", failure)
                raise InvalidParameterValue(str(failure)) from exc
            self._loaded[scheme] = cls
            return cls

    def check(self) -> list[PluginLoadFailure]:
        """Imports every plugin now (``mlgrid plugin list``, start-up logs); returns the failures.

        A failing plugin stays registered: using its scheme keeps answering with the failure,
        which names the plugin and the error, while every other scheme works.
        """
        for scheme in self.plugin_schemes():
            with contextlib.suppress(InvalidParameterValue):  # recorded in self.failures
                self.get(scheme)
        with self._lock:
            return [self.failures[s] for s in sorted(self.failures)]

    def is_plugin(self, scheme: str) -> bool:
        """True when ``scheme`` is served by an installed plugin (or registered at run time)."""
        return scheme in self.plugin_schemes()


def load_providers(group: str) -> tuple[list[Any], list[PluginLoadFailure]]:
    """Instantiates every provider registered in ``group`` (the names are unused).

    Returns the providers that loaded and the failures, so callers can report broken plugins
    without failing themselves.
    """
    providers: list[Any] = []
    failures: list[PluginLoadFailure] = []
    for entry in installed_entry_points(group):
        try:
            providers.append(entry.load()())
        except Exception as exc:
            failure = PluginLoadFailure(
                group, entry.name, entry.value, f"{type(exc).__name__}: {exc}"
            )
            log.warning("%s", failure)
            failures.append(failure)
    return providers, failures


P = TypeVar("P")


class ProviderRegistry(Generic[P]):
    """Providers of one entry-point group (names unused): built-ins first, then plugins.

    Plugins load on first use, not at import. One that fails to load is recorded in
    ``failures`` ("name (value): error") and reported with a warning, then skipped: a broken
    plugin must not stop a training job from logging.
    """

    def __init__(self, group: str, kind: str, builtins: list[P] | None = None) -> None:
        #: Entry-point group, e.g. "mlgrid.run_context_provider".
        self.group = group
        #: What the providers are, for messages ("run context provider").
        self.kind = kind
        self._providers: list[P] = list(builtins or [])
        self._plugins_loaded = False
        self._lock = threading.Lock()
        #: "name (value): error" of plugins that failed to load.
        self.failures: list[str] = []

    def register(self, provider: P) -> None:
        with self._lock:
            self._providers.append(provider)

    def unregister(self, provider: P) -> None:
        with self._lock:
            if provider in self._providers:
                self._providers.remove(provider)

    @property
    def providers(self) -> list[P]:
        """Every provider, loading the plugins on the first call."""
        with self._lock:
            if not self._plugins_loaded:
                self._plugins_loaded = True
                loaded, failures = load_providers(self.group)
                self._providers.extend(loaded)
                for failure in failures:
                    described = f"{failure.name} ({failure.value}): {failure.error}"
                    self.failures.append(described)
                    warnings.warn(
                        f"{self.kind} plugin {described}; it is skipped",
                        RuntimeWarning,
                        stacklevel=4,
                    )
            return list(self._providers)
