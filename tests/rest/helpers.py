"""Raw HTTP against the REST port, for what the mlflow client never sends (bad input, ajax)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests


def unique(prefix: str) -> str:
    """A name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, Any] | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """One request; ``body`` is sent as JSON, ``raw`` as is."""
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return requests.request(
        method,
        base + path,
        data=data,
        params=params,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def error_of(response: requests.Response) -> tuple[int, str, str]:
    """(HTTP status, error_code, message) of an MLflow error answer."""
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    return response.status_code, body["error_code"], body["message"]
