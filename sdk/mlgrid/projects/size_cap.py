"""A cap on the bytes a project fetch may bring in, enforced while it downloads.

A fetch is stopped as soon as it passes the cap: an HTTP download counts the bytes it
streams, a zip is refused from the sizes its entries declare (``zipfile`` reads no more than
declared), a local copy counts what it copies, and ``git clone`` is watched and killed once
its directory outgrows the cap. Nothing larger than the cap (plus one chunk) reaches the disk.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mlgrid.exceptions import InvalidParameterValue

__all__ = ["SizeCap", "SourceTooLarge"]


class SourceTooLarge(InvalidParameterValue):
    """The project is larger than the cap; the fetch stopped."""


@dataclass
class SizeCap:
    """At most ``max_bytes`` for one fetch (None: no cap); ``what`` names the project."""

    max_bytes: int | None
    what: str
    #: Bytes counted so far by :meth:`add` (streams and copies).
    counted: int = 0

    def _refuse(self) -> SourceTooLarge:
        return SourceTooLarge(
            f"project {self.what} is larger than the {self.max_bytes} bytes a fetch may bring "
            "in; the download was stopped"
        )

    def add(self, size: int) -> None:
        """Counts ``size`` more bytes; refuses once past the cap."""
        self.counted += size
        if self.max_bytes is not None and self.counted > self.max_bytes:
            raise self._refuse()

    def check_declared(self, size: int) -> None:
        """Refuses before a transfer whose announced size is already past the cap."""
        if self.max_bytes is not None and size > self.max_bytes:
            raise self._refuse()

    def check_tree(self, directory: Path) -> None:
        """Refuses when the files below ``directory`` hold more than the cap."""
        if self.max_bytes is None:
            return
        total = 0
        for root, _dirs, files in os.walk(directory):
            for name in files:
                try:
                    info = os.lstat(os.path.join(root, name))
                except OSError:
                    continue  # written and removed while we looked
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
            if total > self.max_bytes:
                raise self._refuse()
