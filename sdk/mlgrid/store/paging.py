"""Opaque page tokens shared by every store: base64 of a small JSON document with a checksum.

Clients must treat tokens as opaque; the checksum makes a hand-edited or truncated token fail
with INVALID_PARAMETER_VALUE instead of silently returning the wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from mlgrid.exceptions import InvalidParameterValue

__all__ = ["decode_page_token", "encode_page_token"]


def _checksum(kind: str, offset: int) -> str:
    return hashlib.sha256(f"mlgrid:{kind}:{offset}".encode()).hexdigest()[:12]


def encode_page_token(offset: int, kind: str) -> str:
    """A token for the page starting at ``offset`` of a listing of ``kind`` (e.g. "runs")."""
    body = json.dumps({"offset": offset, "kind": kind, "check": _checksum(kind, offset)})
    return base64.urlsafe_b64encode(body.encode()).decode()


def decode_page_token(token: str, kind: str) -> int:
    """The offset in ``token`` (0 for an empty token). Raises InvalidParameterValue if tampered."""
    if not token:
        return 0
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = body["offset"]
        valid = (
            isinstance(body, dict)
            and isinstance(offset, int)
            and offset >= 0
            and body.get("kind") == kind
            and body.get("check") == _checksum(kind, offset)
        )
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        valid = False
    if not valid:
        shown = token if len(token) <= 60 else token[:60] + "..."
        raise InvalidParameterValue(
            f"Invalid page_token {shown!r}: not a token returned by a previous {kind} call "
            "(pass next_page_token unchanged, or an empty token for the first page)"
        )
    return int(offset)
