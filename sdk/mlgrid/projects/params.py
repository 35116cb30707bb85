"""Entry-point parameters: typing, defaults, paths made absolute, and the shell command.

Every value reaches the shell through :func:`shlex.quote`, so a value such as ``; rm -rf /``
or ``$(id)`` arrives in the program as that literal text. The command template is a Python
format string, but only plain ``{name}`` fields are substituted (no attribute or index access,
which ``str.format`` would otherwise evaluate on the values).
"""

from __future__ import annotations

import math
import shlex
import string
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.spec import EntryPoint

__all__ = [
    "ResolvedParameters",
    "build_command",
    "is_remote_uri",
    "needs_download",
    "resolve_parameters",
]


@dataclass(frozen=True)
class ResolvedParameters:
    """Parameter values after typing and defaults, before quoting."""

    #: Declared parameters: local paths absolute, remote ``path`` values still URIs.
    declared: dict[str, str]
    #: Undeclared parameters, passed as ``--key value``.
    extra: dict[str, str]
    #: Types of the declared parameters.
    types: dict[str, str]

    def all(self) -> dict[str, str]:
        """Every value, as logged to the run."""
        return {**self.declared, **self.extra}


def is_remote_uri(value: str) -> bool:
    """True for URIs with a scheme other than ``file`` (a one-letter scheme is a drive)."""
    scheme = urlsplit(value).scheme
    return len(scheme) > 1 and scheme != "file"


def needs_download(ptype: str, value: str) -> bool:
    """``path`` parameters given as remote URIs are downloaded before the run starts."""
    return ptype == "path" and is_remote_uri(value)


def _local_path(value: str, base: Path) -> Path:
    if value.startswith("file:"):
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost"):
            raise InvalidParameterValue(f"file URI {value!r} names a remote host")
        value = url2pathname(parts.path)
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _typed_value(entry: EntryPoint, name: str, ptype: str, value: str, base: Path) -> str:
    where = f"parameter {name!r} of entry point {entry.name!r}"
    if ptype == "float":
        try:
            number = float(value)
        except ValueError:
            raise InvalidParameterValue(
                f"{where} must be a number (type float), got {value!r}"
            ) from None
        if math.isnan(number) and value.strip().lower() not in ("nan", "+nan", "-nan"):
            raise InvalidParameterValue(f"{where} must be a number (type float), got {value!r}")
        return value
    if ptype == "path":
        if is_remote_uri(value):
            return value
        path = _local_path(value, base)
        if not path.exists():
            raise InvalidParameterValue(
                f"{where} (type path) is {value!r}, but no such file or directory exists "
                f"(looked for {path})"
            )
        return str(path.resolve())
    if ptype == "uri":
        if is_remote_uri(value) or value.startswith("file:"):
            return value
        return str(_local_path(value, base).absolute())
    return value


def resolve_parameters(
    entry: EntryPoint, user_params: dict[str, str], base_dir: Path
) -> ResolvedParameters:
    """Applies defaults and types; relative ``path``/``uri`` values resolve against ``base_dir``.

    A declared parameter without a value or default is an error naming it.
    """
    for key in user_params:
        if not key or key.startswith("-") or "\x00" in key:
            raise InvalidParameterValue(
                f"parameter name {key!r} is not allowed: names are non-empty and do not start "
                "with '-'"
            )
    missing = [
        name
        for name, param in entry.parameters.items()
        if name not in user_params and param.default is None
    ]
    if missing:
        raise InvalidParameterValue(
            f"entry point {entry.name!r} needs parameter(s) {', '.join(missing)}: no value was "
            "given and they have no default"
        )
    declared: dict[str, str] = {}
    for name, param in entry.parameters.items():
        raw = user_params.get(name, param.default)
        assert raw is not None  # checked above
        declared[name] = _typed_value(entry, name, param.type, str(raw), base_dir)
    extra = {k: str(v) for k, v in user_params.items() if k not in entry.parameters}
    types = {name: param.type for name, param in entry.parameters.items()}
    return ResolvedParameters(declared=declared, extra=extra, types=types)


def build_command(entry: EntryPoint, declared: dict[str, str], extra: dict[str, str]) -> str:
    """The shell command: the template with quoted values, then ``--key value`` extras."""
    pieces: list[str] = []
    try:
        parsed = list(string.Formatter().parse(entry.command))
    except ValueError as exc:
        raise InvalidParameterValue(
            f"command of entry point {entry.name!r} is not a valid format string ({exc}); "
            "write a literal brace as {{ or }}"
        ) from exc
    for literal, field_name, format_spec, conversion in parsed:
        pieces.append(literal)
        if field_name is None:
            continue
        if field_name not in declared or format_spec or conversion:
            raise InvalidParameterValue(
                f"command of entry point {entry.name!r} uses {{{field_name}}}, which is not a "
                f"declared parameter (declared: {', '.join(declared) or 'none'}); only plain "
                "{name} fields are substituted"
            )
        pieces.append(shlex.quote(declared[field_name]))
    command = "".join(pieces)
    for key, value in extra.items():
        command += f" --{shlex.quote(key)} {shlex.quote(value)}"
    return command
