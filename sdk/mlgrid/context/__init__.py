"""Run context: tags every new run gets from where it was started (user, source, git)."""

from .abstract import RunContextProvider
from .registry import ENTRY_POINT_GROUP, RunContextProviderRegistry, get_registry, resolve_tags

__all__ = [
    "ENTRY_POINT_GROUP",
    "RunContextProvider",
    "RunContextProviderRegistry",
    "get_registry",
    "resolve_tags",
]
