"""How each RPC is checked: one :class:`Rule` per method, declared by the service that serves it
(``services/<name>/access_rules.py``). A method of a checked service without a rule is refused,
so a new RPC cannot slip through unchecked (tests/auth enumerates the descriptors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .permissions import Permission, ResourceKind

#: The resource id of what belongs to no resource the grants know (an artifact location
#: outside the experiments' root): only admins and mlgrid's services may touch it.
UNOWNED = ""
#: request -> the ids of the resources it touches (empty: nothing to check, e.g. not found).
IdsOf = Callable[[Any], Iterable[str]]
#: (response, readable) -> the response with only what ``readable`` keeps.
Filter = Callable[[Any, Callable[[Iterable[str]], set[str]]], Any]


@dataclass(frozen=True)
class Rule:
    """What one RPC needs."""

    #: The kind of resource the call touches.
    kind: ResourceKind | None = None
    #: The level needed on each resource ``ids`` names.
    needs: Permission | None = None
    ids: IdsOf | None = None
    #: When the level depends on the request (a presigned URL to read or to write).
    needs_of: Callable[[Any], Permission] | None = None
    #: The call creates a resource: (request, response) -> its id. The caller needs to be allowed
    #: to create in its workspace, and gets MANAGE on it afterwards.
    creates: Callable[[Any, Any], str] | None = None
    #: The call lists resources: its response is cut to those the caller may read.
    filters: Filter | None = None
    #: Runs after a successful call with (access control, request): forget a deleted resource's
    #: grants, move a renamed one's.
    after: Callable[[Any, Any], None] | None = None
    #: Runs after a successful call with (request, response) to remember what the response
    #: says about ownership (a new run's experiment), so later calls need not look it up.
    learns: Callable[[Any, Any], None] | None = None
    #: Only admins (and mlgrid's services).
    admin: bool = False
    #: Any authenticated caller; the servicer decides the rest (the auth service's own calls).
    anyone: bool = False


def reads(kind: ResourceKind, ids: IdsOf) -> Rule:
    return Rule(kind=kind, needs=Permission.READ, ids=ids)


def edits(kind: ResourceKind, ids: IdsOf) -> Rule:
    return Rule(kind=kind, needs=Permission.EDIT, ids=ids)


def manages(
    kind: ResourceKind, ids: IdsOf, after: Callable[[Any, Any], None] | None = None
) -> Rule:
    return Rule(kind=kind, needs=Permission.MANAGE, ids=ids, after=after)


def creates(kind: ResourceKind, made: Callable[[Any, Any], str]) -> Rule:
    return Rule(kind=kind, creates=made)


def searches(kind: ResourceKind, keep: Filter, ids: IdsOf | None = None) -> Rule:
    """A listing cut to what the caller may read; ``ids`` (experiments a run search names) must
    each be readable too."""
    return Rule(kind=kind, needs=Permission.READ if ids else None, ids=ids, filters=keep)


ANYONE = Rule(anyone=True)
ADMIN = Rule(admin=True)


def field(name: str) -> IdsOf:
    """The resource id in string field ``name`` (nothing when empty)."""

    def ids(request: Any) -> Iterable[str]:
        value = getattr(request, name)
        return (value,) if value else ()

    return ids


def repeated(name: str) -> IdsOf:
    """The resource ids in repeated string field ``name``."""
    return lambda request: tuple(getattr(request, name))
