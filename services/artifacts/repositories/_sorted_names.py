"""Sorted names of recently listed large directories, so paging through one reads it once.

A directory cannot be read from a name onwards: each page of a paged listing would read and sort
the whole directory again (100 pages of a 100k-entry directory: 100 full reads). The sorted
names are kept with the directory's mtime instead, and a page is a bisect into them. Adding,
removing or renaming an entry changes the mtime, so a kept list is used only while it is exact.
A directory changed within the last second is not kept: a change within the filesystem's
timestamp granularity may leave the mtime as it was.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Directories kept (least recently listed dropped first), and the smallest one worth keeping.
MAX_DIRECTORIES = 8
MIN_ENTRIES = 1_000
#: How long a directory must have been unchanged before its names are kept.
SETTLED_NS = 1_000_000_000

_kept: OrderedDict[tuple[str, str], tuple[int, list[str]]] = OrderedDict()
_lock = threading.Lock()


def sorted_names(
    directory: str, visible: Callable[[os.DirEntry[str]], bool], scope: str
) -> list[str]:
    """The sorted names of ``directory``'s entries that ``visible`` accepts (the caller must not
    change the list). FileNotFoundError / NotADirectoryError as os.scandir raises them.
    ``scope`` names the filter (a repository's root): lists are kept per scope and directory."""
    key = (scope, directory)
    mtime = os.stat(directory).st_mtime_ns
    with _lock:
        kept = _kept.get(key)
        if kept is not None and kept[0] == mtime:
            _kept.move_to_end(key)
            return kept[1]
    with os.scandir(directory) as scan:
        names = sorted(entry.name for entry in scan if visible(entry))
    if len(names) >= MIN_ENTRIES and time.time_ns() - mtime > SETTLED_NS:
        with _lock:
            _kept[key] = (mtime, names)
            _kept.move_to_end(key)
            while len(_kept) > MAX_DIRECTORIES:
                _kept.popitem(last=False)
    return names
