"""How much one request, and one service, may take: the limits that keep a hostile or unlucky
input from holding a service (docs/limits.md lists them with the reason for each).

MLflow's data limits (key and value lengths, batch sizes) are about what is stored; the limits
here are about what it costs to serve a call. Each is refused with INVALID_ARGUMENT (the request
itself is too big: :class:`~mlgrid.exceptions.InvalidParameterValue`) or RESOURCE_EXHAUSTED (the
service is busy: :class:`~mlgrid.exceptions.RequestLimitExceeded`), and every message names the
limit. Errors never echo more than :data:`MAX_ECHOED_CHARS` of what a client sent.
"""

from __future__ import annotations

from mlgrid.exceptions import InvalidParameterValue

# -- search filters ---------------------------------------------------------------------------

#: Characters in one search filter. 64 KiB holds an ``IN`` list of ~1,800 run ids; a 10 MB filter
#: took a tracking process to 4 GB of memory before this limit.
MAX_FILTER_CHARS = 65_536
#: Comparisons in one filter (each becomes SQL; 20,000 ``OR``ed ones ran for over a minute).
MAX_FILTER_COMPARISONS = 500
#: Parentheses nested in one filter (5,000 overflowed the parser's stack).
MAX_FILTER_DEPTH = 32
#: Values in one filter's ``IN (...)`` lists, all lists together.
MAX_FILTER_LIST_VALUES = 10_000
#: ``order_by`` clauses in one search.
MAX_ORDER_BY_CLAUSES = 20

# -- id lists and free text -------------------------------------------------------------------

#: Ids one request may name in a list (SearchRuns' experiment_ids; 100k gave a database error).
MAX_IDS_PER_REQUEST = 10_000
#: Characters of a path a client names (artifact paths, model-version sources).
MAX_PATH_CHARS = 4_096
#: Bytes (UTF-8) of one segment of such a path: what file systems allow (NAME_MAX).
MAX_PATH_SEGMENT_BYTES = 255
#: Characters of a page token (tokens the services make are far shorter).
MAX_PAGE_TOKEN_CHARS = 4_096

# -- errors -----------------------------------------------------------------------------------

#: Characters of client input an error message quotes; the rest is cut with "...".
MAX_ECHOED_CHARS = 200
#: Characters of an error message sent to a client. gRPC carries the message in a header whose
#: size is capped (8 KiB by default): a longer one is dropped and the client sees "Stream
#: removed" instead of the error.
MAX_ERROR_MESSAGE_CHARS = 2_000

# -- messages, streams and bytes in flight ----------------------------------------------------

#: Calls one service process holds at once (running or queued for a worker thread); beyond it
#: gRPC answers RESOURCE_EXHAUSTED at once instead of queueing without bound.
MAX_CONCURRENT_CALLS = 1_024
#: Artifact transfers one artifacts process runs at once, and how long one waits for a slot:
#: settings (``MLGRID_ARTIFACTS_MAX_TRANSFERS``, default 8, and ``MLGRID_ARTIFACTS_TRANSFER_WAIT``,
#: default 120 s) in :mod:`mlgrid.environment`, applied by the service's transfer gate.


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
