"""The ``mlgrid`` command. Each command group lives in its own module and loads on use, so
``mlgrid --help`` stays fast and an SDK-only install still offers the client commands."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

import mlgrid

#: command name -> (module, attribute). Modules that are not installed are not offered.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("mlgrid.cli.stack", "up"),
    "server": ("mlgrid.cli.stack", "server"),
    "db": ("mlgrid.cli.db", "db"),
    "experiments": ("mlgrid.cli.experiments", "experiments"),
    "runs": ("mlgrid.cli.runs", "runs"),
    "artifacts": ("mlgrid.cli.artifacts", "artifacts"),
    "models": ("mlgrid.cli.models", "models"),
    "run": ("mlgrid.cli.projects", "run"),
    "plugin": ("mlgrid.cli.plugin", "plugin"),
    "auth": ("mlgrid.cli.auth", "auth"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when invoked (or listed)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            name for name, (module, _) in COMMANDS.items() if importlib.util.find_spec(module)
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or importlib.util.find_spec(target[0]) is None:
            return None
        command: click.Command = getattr(importlib.import_module(target[0]), target[1])
        return command

    def invoke(self, ctx: click.Context) -> object:
        """A domain error from any command is one line naming what to change, not a
        traceback (the message says which setting or value is at fault)."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Looked up, not imported: mlgrid.exceptions loads gRPC, which commands such as
            # ``mlgrid up`` (a supervisor of processes) never need; a raised MlgridException
            # means it is loaded.
            exceptions = sys.modules.get("mlgrid.exceptions")
            if exceptions is not None and isinstance(exc, exceptions.MlgridException):
                raise click.ClickException(exc.message) from None
            raise


@click.group(cls=LazyGroup)
@click.version_option(mlgrid.__version__, prog_name="mlgrid")
def cli() -> None:
    """mlgrid: experiment tracking, artifacts, model registry and projects over gRPC."""


if __name__ == "__main__":
    cli()
