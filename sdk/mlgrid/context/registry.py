"""The run context providers: built-ins, then plugins from ``mlgrid.run_context_provider``.

Plugins are looked up on first use, not at import. A plugin that fails to import, or whose
``tags()`` raises, is reported (a warning with its name and the error) and skipped: a broken
plugin must not stop a training job from logging.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points

from mlgrid import environment as env

from .abstract import RunContextProvider
from .default import DefaultRunContext
from .git import GitRunContext

ENTRY_POINT_GROUP = "mlgrid.run_context_provider"


class RunContextProviderRegistry:
    """Holds the providers and merges their tags."""

    def __init__(self, builtins: Iterable[RunContextProvider] = ()) -> None:
        self._providers: list[RunContextProvider] = list(builtins)
        self._plugins_loaded = False
        self._lock = threading.Lock()
        #: "name (value): error" of plugins that failed to load.
        self.failures: list[str] = []

    def register(self, provider: RunContextProvider) -> None:
        with self._lock:
            self._providers.append(provider)

    def _load_plugins(self) -> None:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                provider = entry.load()()
            except Exception as exc:
                failure = f"{entry.name} ({entry.value}): {type(exc).__name__}: {exc}"
                self.failures.append(failure)
                warnings.warn(
                    f"run context provider plugin {failure}; its tags are skipped",
                    RuntimeWarning,
                    stacklevel=4,
                )
                continue
            self._providers.append(provider)

    @property
    def providers(self) -> list[RunContextProvider]:
        with self._lock:
            if not self._plugins_loaded:
                self._plugins_loaded = True
                self._load_plugins()
            return list(self._providers)

    def __iter__(self) -> Iterator[RunContextProvider]:
        return iter(self.providers)

    def context_tags(self) -> dict[str, str]:
        """Tags of every provider in context; later providers (plugins) win over earlier ones."""
        tags: dict[str, str] = {}
        for provider in self.providers:
            name = type(provider).__name__
            try:
                if provider.in_context():
                    tags.update({str(k): str(v) for k, v in provider.tags().items()})
            except Exception as exc:
                warnings.warn(
                    f"run context provider {name} failed: {type(exc).__name__}: {exc}; "
                    "its tags are skipped",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return tags


_registry = RunContextProviderRegistry([DefaultRunContext(), GitRunContext()])


def get_registry() -> RunContextProviderRegistry:
    return _registry


def resolve_tags(tags: Mapping[str, object] | None = None) -> dict[str, str]:
    """Context tags merged with ``tags``; the explicit ``tags`` win."""
    resolved = {} if env.MLGRID_DISABLE_RUN_CONTEXT.get() else _registry.context_tags()
    resolved.update({str(k): str(v) for k, v in (tags or {}).items()})
    return resolved
