"""Hostile path and URI checks, in one place (artifacts, and the registry's model sources).

Every path or URI that comes from a client is decoded repeatedly (``%252e`` → ``%2e`` → ``.``)
until it stops changing, and only then inspected, so an encoded ``..`` cannot slip past. A path
is refused when it is absolute, names a drive (``C:``), contains a backslash, NUL or another
control character, ``#`` or ``?``, climbs with ``..``, or has empty segments (``a//b``). On the
file system, symlinks are resolved and must stay inside the root.

Every refusal is an :class:`InvalidParameterValue` (gRPC INVALID_ARGUMENT) naming the field and
the value, and saying what would be accepted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import MAX_PATH_CHARS, MAX_PATH_SEGMENT_BYTES
from mlgrid.request_limits import shown

#: Decoding rounds before a value that keeps changing is refused outright.
MAX_DECODE_ROUNDS = 8

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

_RELATIVE_HINT = "use a relative path such as 'dir/file.txt'"


def _refuse(field: str, value: str, why: str, hint: str = _RELATIVE_HINT) -> InvalidParameterValue:
    return InvalidParameterValue(f"{field} {shown(value)} is not allowed: {why}; {hint}")


def decode_fully(value: str, field: str = "path") -> str:
    """``value`` percent-decoded until stable; refused if it never settles."""
    current = value
    for _ in range(MAX_DECODE_ROUNDS):
        try:
            decoded = unquote(current, errors="strict") if "%" in current else current
        except UnicodeDecodeError:
            raise _refuse(field, value, "it percent-encodes bytes that are not UTF-8") from None
        if decoded == current:
            return current
        current = decoded
    raise _refuse(field, value, f"it is still percent-encoded after {MAX_DECODE_ROUNDS} decodings")


def _check_characters(value: str, decoded: str, field: str, hint: str = _RELATIVE_HINT) -> None:
    if "\x00" in decoded:
        raise _refuse(field, value, "it contains a NUL character", hint)
    if _CONTROL.search(decoded):
        raise _refuse(field, value, "it contains a control character", hint)
    if "\\" in decoded:
        raise _refuse(field, value, "it contains a backslash (use '/' between segments)", hint)
    if "#" in decoded:
        raise _refuse(field, value, "it contains '#'", hint)
    if "?" in decoded:
        raise _refuse(field, value, "it contains '?'", hint)


def check_relative_path(path: str, field: str = "path", *, allow_empty: bool = True) -> str:
    """The normalised form of a client-supplied relative path ('' means the root itself).

    Single ``.`` segments and one trailing ``/`` are dropped; everything hostile is refused.
    """
    if len(path) > MAX_PATH_CHARS:
        raise _refuse(
            field, path, f"it is longer than the limit (MAX_PATH_CHARS) of {MAX_PATH_CHARS}"
        )
    decoded = decode_fully(path, field)
    _check_characters(path, decoded, field)
    if decoded.startswith("/"):
        raise _refuse(field, path, "it is an absolute path")
    if _DRIVE.match(decoded):
        raise _refuse(field, path, "it names a drive")
    if _SCHEME.match(decoded) and "/" in decoded.split(":", 1)[1][:2]:
        raise _refuse(field, path, "it is a URI, not a path")
    trimmed = decoded[:-1] if decoded.endswith("/") else decoded
    segments = trimmed.split("/") if trimmed else []
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            raise _refuse(field, path, "it climbs out with '..'")
        if segment == "":
            raise _refuse(field, path, "it has an empty segment ('//')")
        if len(segment.encode()) > MAX_PATH_SEGMENT_BYTES:
            raise _refuse(
                field,
                path,
                f"a segment is longer than the limit (MAX_PATH_SEGMENT_BYTES) of "
                f"{MAX_PATH_SEGMENT_BYTES} bytes",
            )
        if segment != ".":
            kept.append(segment)
    normalised = "/".join(kept)
    if not normalised and not allow_empty:
        raise _refuse(field, path, "it is empty")
    return normalised


def join_relative(*parts: str) -> str:
    """Joins already-checked relative paths, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def resolve_inside(
    root: Path, relative: str, field: str = "path", *, root_is_real: bool = False
) -> Path:
    """``root / relative`` on the file system, refused when a symlink leads it out of ``root``.

    ``relative`` must already be checked by :func:`check_relative_path`. The target itself may not
    exist yet (an upload); its nearest existing ancestor is what gets resolved. Callers that
    already resolved ``root`` pass ``root_is_real`` to skip resolving it again.
    """
    real_root = root if root_is_real else Path(os.path.realpath(root))
    candidate = real_root.joinpath(*relative.split("/")) if relative else real_root
    resolved = Path(os.path.realpath(candidate))
    if resolved != real_root and real_root not in resolved.parents:
        raise _refuse(field, relative, "it resolves through a symlink to a place outside the root")
    return candidate


@dataclass(frozen=True)
class ParsedUri:
    """A checked URI: scheme, authority and the decoded path (``/``-separated)."""

    scheme: str
    netloc: str
    path: str

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def local_path(self) -> Path:
        """The file-system path of a ``file`` URI."""
        return Path(self.path)


def check_uri(uri: str, field: str = "artifact_uri") -> ParsedUri:
    """Parses and checks a URI (or a plain absolute local path, taken as ``file``).

    Refused: anything with ``..`` segments, NUL/control characters, backslashes, a query or a
    fragment (also when percent-encoded), and relative local paths.
    """
    hint = "use an absolute URI such as 'file:///data/artifacts' or 's3://bucket/prefix'"
    if not uri:
        raise _refuse(field, uri, "it is empty", hint)
    if len(uri) > MAX_PATH_CHARS:
        raise _refuse(
            field, uri, f"it is longer than the limit (MAX_PATH_CHARS) of {MAX_PATH_CHARS}", hint
        )
    decoded = decode_fully(uri, field)
    _check_characters(uri, decoded, field, hint)
    if _DRIVE.match(decoded):
        raise _refuse(field, uri, "it names a drive", hint)
    parts = urlsplit(decoded)
    scheme = parts.scheme.lower()
    if not scheme:
        if not decoded.startswith("/"):
            raise _refuse(field, uri, "it is a relative path", hint)
        scheme, netloc, path = "file", "", decoded
    else:
        netloc, path = parts.netloc, parts.path
    if scheme == "file":
        if netloc not in ("", "localhost"):
            raise _refuse(field, uri, f"file URIs name no host (got {netloc!r})", hint)
        netloc = ""
        if not path.startswith("/"):
            raise _refuse(field, uri, "a file URI needs an absolute path", hint)
    segments = path.split("/")
    if ".." in segments:
        raise _refuse(field, uri, "it climbs out with '..'", hint)
    if "." in segments:
        raise _refuse(field, uri, "it has a '.' segment", hint)
    inner = segments[1:-1] if path.startswith("/") else segments[:-1]
    if "" in inner:
        raise _refuse(field, uri, "it has an empty segment ('//')", hint)
    normalised = path.rstrip("/") or ("/" if path.startswith("/") else "")
    return ParsedUri(scheme=scheme, netloc=netloc, path=normalised)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def is_inside(location: ParsedUri, root: ParsedUri) -> bool:
    """True when ``location`` is ``root`` or lies below it (symlinks resolved for files)."""
    if location.scheme != root.scheme or location.netloc != root.netloc:
        return False
    if location.is_local:
        real_root = Path(os.path.realpath(root.path))
        real = Path(os.path.realpath(location.path))
        return real == real_root or real_root in real.parents
    root_segments = _segments(root.path)
    return _segments(location.path)[: len(root_segments)] == root_segments


def check_inside_root(location: str, root: str, field: str = "source") -> ParsedUri:
    """Checks ``location`` (a URI or absolute local path) and that it lies inside ``root``.

    The registry uses this for model-version sources; the artifacts service for artifact roots.
    """
    parsed = check_uri(location, field)
    root_parsed = check_uri(root, "root")
    if not is_inside(parsed, root_parsed):
        raise InvalidParameterValue(
            f"{field} {shown(location)} is not allowed: it lies outside {root!r}; "
            f"use a location inside {root!r}"
        )
    return parsed


def check_inside_any_root(
    location: str, roots: list[str], field: str = "artifact_uri"
) -> ParsedUri:
    """Like :func:`check_inside_root` for several allowed roots (any one will do)."""
    parsed = check_uri(location, field)
    for root in roots:
        if is_inside(parsed, check_uri(root, "root")):
            return parsed
    allowed = ", ".join(repr(r) for r in roots) or "none configured"
    raise InvalidParameterValue(
        f"{field} {shown(location)} is not allowed: it lies outside the allowed roots; "
        f"allowed: {allowed}"
    )


def to_posix(path: str | os.PathLike[str]) -> str:
    """A local relative path in ``/`` form (for building artifact paths from local files)."""
    return PurePosixPath(*Path(path).parts).as_posix()
