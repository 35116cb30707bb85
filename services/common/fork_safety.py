"""A process that runs services in-process (the SDK's embedded mode) and then forks
(``multiprocessing``'s default start method on Linux): what its children must not share.

A database connection is a session on one socket: a child that writes on a connection it
inherited interleaves its messages with its parent's, and both hang or read each other's replies
(on PostgreSQL a child's pool worker hung, and children's exits ended their parent's sessions).
So in a child each pool forgets what it inherited, without closing it, and connects anew; the
forgotten connections are the parent's to close (psycopg, when one is collected in a child,
leaves its session alone). State kept for other threads (group commit's writes under way, the
registry's change feed) is reset too: those threads did not come along.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

#: Per object, how a forked child makes it forget what it inherited.
_RESETS: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def reset_in_child(owner: Any, reset: Callable[[Any], None]) -> None:
    """After a fork, the child calls ``reset(owner)`` (while ``owner`` lives)."""
    _RESETS[owner] = reset


def _after_fork_in_child() -> None:
    for owner, reset in list(_RESETS.items()):
        reset(owner)


os.register_at_fork(after_in_child=_after_fork_in_child)
