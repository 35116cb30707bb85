"""The interface of a run context provider (built-in or a plugin)."""

from __future__ import annotations

from abc import ABC, abstractmethod


class RunContextProvider(ABC):
    """Contributes tags to every new run when it applies to the current process.

    Plugins register a subclass under the entry-point group ``mlgrid.run_context_provider``
    (the entry-point name is unused). ``tags()`` is only called when ``in_context()`` is true.
    """

    @abstractmethod
    def in_context(self) -> bool:
        """Whether this provider has anything to say about the current process."""

    @abstractmethod
    def tags(self) -> dict[str, str]:
        """Tags for a new run."""
