"""Checks a command line meant for the image's ``mlgrid`` entrypoint against the real CLI.

The arguments are parsed by the actual click commands (nothing is run), so an unknown flag, a
subcommand that does not exist or a bad choice fails exactly as ``mlgrid`` would fail in the
container. Paths that only exist inside a container are mapped to local files first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from mlgrid.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def parse(args: list[str], files: Mapping[str, Path] | None = None) -> tuple[str, dict[str, Any]]:
    """``(subcommand path, parsed parameters)`` for ``mlgrid <args>``; raises click errors."""
    files = files or {}
    mapped = [_map_path(a, files) for a in args]
    command: click.Command = cli
    names: list[str] = []
    parent = click.Context(cli, info_name="mlgrid")
    while isinstance(command, click.Group):
        if not mapped:
            raise click.UsageError(f"'mlgrid {' '.join(names)}' needs a subcommand")
        name, mapped = mapped[0], mapped[1:]
        sub = command.get_command(parent, name)
        if sub is None:
            raise click.UsageError(f"no such command: mlgrid {' '.join([*names, name])}")
        names.append(name)
        command = sub
        parent = click.Context(command, info_name=name, parent=parent)
    ctx = command.make_context(names[-1], list(mapped), parent=parent.parent)
    return " ".join(names), dict(ctx.params)


def _map_path(arg: str, files: Mapping[str, Path]) -> str:
    for inside, local in files.items():
        if arg == inside or arg.endswith("=" + inside):
            return arg[: len(arg) - len(inside)] + str(local)
    return arg


def known_env_names() -> set[str]:
    """Every MLGRID_*/MLFLOW_* name the code reads or documents (sdk/ and services/)."""
    names: set[str] = set()
    for folder in ("sdk/mlgrid", "services"):
        for source in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"\b(?:MLGRID|MLFLOW)_[A-Z0-9_]+\b", source.read_text()))
    return names
