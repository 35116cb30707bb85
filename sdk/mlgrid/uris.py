"""The scheme of a URI as mlgrid routes by it (shared by the gateway and the SDK's tunnels, which
must agree on where a call goes)."""

from __future__ import annotations


def uri_scheme(uri: str) -> str:
    """The scheme of ``uri``; "file" for plain paths (as MLflow treats them)."""
    head, sep, rest = uri.partition(":")
    if not sep or not head or not head[0].isalpha():
        return "file"
    # "C:\\dir" and "C:/dir" are Windows paths, not schemes.
    if len(head) == 1 and rest[:1] in ("\\", "/") and not rest.startswith("//"):
        return "file"
    if not all(c.isalnum() or c in "+-." for c in head):
        return "file"
    return head.lower()
