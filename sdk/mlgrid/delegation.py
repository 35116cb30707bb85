"""Methods of a composed part exposed under the same name on the object that owns the part.

:class:`mlgrid.client.Client` keeps MLflow's flat ``MlflowClient`` method names, but the
registry, artifact and logged-model calls live in their own parts (``client.registry``, ...),
each built from a transport and usable alone. A :class:`Delegated` attribute forwards one name
to the part; it keeps the part's signature for type checkers and its docstring for ``help()``,
and it refuses a name that differs from the part's method so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

__all__ = ["Delegated"]

P = ParamSpec("P")
R = TypeVar("R")


class Delegated(Generic[P, R]):
    """``name = Delegated("part", PartClass.name)`` on the owner's class."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.part = part
        self.method = method
        self.name = method.__name__
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.name:
            raise TypeError(f"{owner.__name__}.{name} delegates to {self.part}.{self.name}")

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Callable[Concatenate[Any, P], R]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:  # on the class: the part's function, so inspect and help() see it
            return self.method
        return getattr(getattr(obj, self.part), self.name)
