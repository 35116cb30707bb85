"""Who started the run and from what: ``mlflow.user``, ``mlflow.source.name``/``.type``."""

from __future__ import annotations

import getpass
import os
import sys

from mlgrid import environment as env
from mlgrid.entities import SourceType

from .abstract import RunContextProvider
from .tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

CONSOLE = "<console>"


def current_user() -> str:
    """The OS user name; "unknown" where there is none (e.g. a container with a bare UID)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def main_file() -> str | None:
    """The script being run (``sys.argv[0]``), or None in a console or ``python -c``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 == "-c" or argv0 == "-":
        return None
    return argv0


def source_name() -> str:
    override = env.MLGRID_SOURCE_NAME.get()
    if override:
        return override
    return main_file() or CONSOLE


def source_type() -> str:
    override = env.MLGRID_SOURCE_TYPE.get()
    if override:
        # Validates the name (PROJECT, JOB, NOTEBOOK, LOCAL) and normalises its case.
        return SourceType.to_string(SourceType.from_string(override))
    return SourceType.to_string(SourceType.LOCAL)


class DefaultRunContext(RunContextProvider):
    """Always applies: the user, the source and its type."""

    def in_context(self) -> bool:
        return True

    def tags(self) -> dict[str, str]:
        return {
            MLFLOW_USER: current_user(),
            MLFLOW_SOURCE_NAME: source_name(),
            MLFLOW_SOURCE_TYPE: source_type(),
        }
