"""Checks of the request limits: how much one request, and one service, may take, so that no
hostile or unlucky input holds a service. The numbers are in :mod:`mlgrid.limits` with MLflow's
data limits (docs/limits.md lists them with the reason for each).

MLflow's data limits (key and value lengths, batch sizes) are about what is stored; the limits
here are about what it costs to serve a call. Each is refused with INVALID_ARGUMENT (the request
itself is too big: :class:`~mlgrid.exceptions.InvalidParameterValue`) or RESOURCE_EXHAUSTED (the
service is busy: :class:`~mlgrid.exceptions.RequestLimitExceeded`), and every message names the
limit. Errors never echo more than :data:`MAX_ECHOED_CHARS` of what a client sent.
"""

from __future__ import annotations

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import (
    MAX_ECHOED_CHARS,
    MAX_FILTER_CHARS,
    MAX_IDS_PER_REQUEST,
    MAX_ORDER_BY_CLAUSES,
    MAX_PAGE_TOKEN_CHARS,
)


def shown(value: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


def check_filter_size(text: str, field: str = "filter") -> None:
    """Refuses a filter longer than :data:`MAX_FILTER_CHARS` before anything parses it."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidParameterValue(
            f"{field} has {len(text)} characters; the limit (MAX_FILTER_CHARS) is "
            f"{MAX_FILTER_CHARS}. Split the search, or use fewer or shorter comparisons."
        )


def check_id_count(ids: object, field: str) -> None:
    """Refuses a list of more than :data:`MAX_IDS_PER_REQUEST` ids."""
    count = len(ids)  # type: ignore[arg-type]
    if count > MAX_IDS_PER_REQUEST:
        raise InvalidParameterValue(
            f"{field} names {count} ids; the limit (MAX_IDS_PER_REQUEST) is "
            f"{MAX_IDS_PER_REQUEST} per request. Split the request."
        )


def check_order_by_count(clauses: object, field: str = "order_by") -> None:
    count = len(clauses)  # type: ignore[arg-type]
    if count > MAX_ORDER_BY_CLAUSES:
        raise InvalidParameterValue(
            f"{field} has {count} clauses; the limit (MAX_ORDER_BY_CLAUSES) is "
            f"{MAX_ORDER_BY_CLAUSES}"
        )


def check_page_token(token: str, field: str = "page_token") -> None:
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise InvalidParameterValue(
            f"{field} has {len(token)} characters; the limit (MAX_PAGE_TOKEN_CHARS) is "
            f"{MAX_PAGE_TOKEN_CHARS}: pass next_page_token from a previous response"
        )
