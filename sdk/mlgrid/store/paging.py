"""The one page-token codec of every listing (runs, experiments, metric history, registered
models, model versions, artifacts), for the built-in stores and for plugin stores alike.

A token is base64 of a small JSON document: which listing it belongs to, where the next page
starts (an offset, or the last key returned for listings that page by key) and a checksum.
Clients treat tokens as opaque; the checksum makes a hand-edited, truncated or foreign token
fail with INVALID_PARAMETER_VALUE instead of silently returning the wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from mlgrid.exceptions import InvalidParameterValue

__all__ = ["decode_page_key", "decode_page_token", "encode_page_key", "encode_page_token"]


def _checksum(kind: str, position: int | str) -> str:
    return hashlib.sha256(f"mlgrid:{kind}:{position}".encode()).hexdigest()[:12]


def _encode(kind: str, field: str, position: int | str) -> str:
    body = json.dumps({field: position, "kind": kind, "check": _checksum(kind, position)})
    return base64.urlsafe_b64encode(body.encode()).decode()


def _decode(token: str, kind: str, field: str) -> object:
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = body[field]
        valid = (
            isinstance(body, dict)
            and body.get("kind") == kind
            and body.get("check") == _checksum(kind, position)
        )
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise _refused(token, kind)
    return position


def _refused(token: str, kind: str) -> InvalidParameterValue:
    shown = token if len(token) <= 60 else token[:60] + "..."
    return InvalidParameterValue(
        f"Invalid page_token {shown!r}: not a token returned by a previous {kind} call "
        "(pass next_page_token unchanged, or an empty token for the first page)"
    )


def encode_page_token(offset: int, kind: str) -> str:
    """A token for the page starting at ``offset`` of a listing of ``kind`` (e.g. "runs")."""
    return _encode(kind, "offset", offset)


def decode_page_token(token: str, kind: str) -> int:
    """The offset in ``token`` (0 for an empty token). Raises InvalidParameterValue if tampered."""
    if not token:
        return 0
    offset = _decode(token, kind, "offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _refused(token, kind)
    return offset


def encode_page_key(after: str, kind: str) -> str:
    """A token for the page after key ``after`` of a listing of ``kind`` paged by key."""
    return _encode(kind, "after", after)


def decode_page_key(token: str, kind: str) -> str:
    """The key in ``token`` ("" for an empty token: the first page)."""
    if not token:
        return ""
    after = _decode(token, kind, "after")
    if not isinstance(after, str):
        raise _refused(token, kind)
    return after
