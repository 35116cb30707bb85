"""The run context providers: built-ins, then plugins from ``mlgrid.run_context_provider``.

Plugins are looked up on first use, not at import. A plugin that fails to import, or whose
``tags()`` raises, is reported (a warning with its name and the error) and skipped: a broken
plugin must not stop a training job from logging.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping

from mlgrid import environment as env
from mlgrid.plugins.registry import ProviderRegistry

from .abstract import RunContextProvider
from .default import DefaultRunContext
from .git import GitRunContext

ENTRY_POINT_GROUP = "mlgrid.run_context_provider"


class RunContextProviderRegistry(ProviderRegistry[RunContextProvider]):
    """Holds the providers and merges their tags."""

    def __init__(self, builtins: Iterable[RunContextProvider] = ()) -> None:
        super().__init__(ENTRY_POINT_GROUP, "run context provider", list(builtins))

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
