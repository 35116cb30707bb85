"""A page of results that remembers the token of the next page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


class PagedList(list[T]):
    """A list with ``.token``: pass it as ``page_token`` to get the next page (None at the end)."""

    def __init__(self, items: Iterable[T], token: str | None) -> None:
        super().__init__(items)
        self.token = token or None

    def to_list(self) -> list[T]:
        return list(self)
