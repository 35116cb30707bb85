"""Readable, aligned tables for every ``mlgrid`` command (and helpers they share).

ID  NAME     LIFECYCLE  CREATED
--  -------  ---------  -------------------
0   Default  active     2026-11-22 18:22:02
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click

from mlgrid.exceptions import MlgridException

F = TypeVar("F", bound=Callable[..., Any])

#: Cells longer than this are cut with "…" so one long value does not break the layout.
MAX_CELL_WIDTH = 60


def format_timestamp(ms: int | None) -> str:
    """Milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS" (UTC); "" for none."""
    if not ms:
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(start_ms: int | None, end_ms: int | None) -> str:
    if not start_ms or not end_ms:
        return ""
    seconds = max(0.0, (end_ms - start_ms) / 1000)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        return ""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def format_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    max_width: int = MAX_CELL_WIDTH,
    empty: str = "(none)",
) -> str:
    """Columns padded to their widest cell, a dashed rule under the headers."""
    cells = [[_cell(value, max_width) for value in row] for row in rows]
    if not cells:
        return empty
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    rule = ["-" * w for w in widths]
    return "\n".join([line([h.upper() for h in headers]), line(rule), *(line(r) for r in cells)])


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], **kwargs: Any) -> None:
    click.echo(format_table(headers, rows, **kwargs))


def format_key_values(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """ "key: value" lines with the values aligned (for ``describe`` commands)."""
    items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
    if not items:
        return "(none)"
    width = max(len(key) for key, _ in items)
    return "\n".join(
        f"{key + ':':<{width + 1}} {'' if value is None else value}" for key, value in items
    )


def print_section(title: str, body: str) -> None:
    click.echo(click.style(title, bold=True))
    click.echo(body)
    click.echo()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def parse_key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` options into a dict; a malformed one is a usage error naming it."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        result[key] = value
    return result


def tracking_uri_option(func: F) -> F:
    """``--tracking-uri``, defaulting to MLGRID_TRACKING_URI / MLFLOW_TRACKING_URI."""
    option = click.option(
        "--tracking-uri",
        envvar=["MLGRID_TRACKING_URI", "MLFLOW_TRACKING_URI"],
        default=None,
        metavar="URI",
        help="grpc://host:port of a stack, or a store URI served in-process "
        "(default: $MLGRID_TRACKING_URI, else sqlite:///mlgrid.db).",
    )
    return option(func)


def output_option(func: F) -> F:
    option = click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Print a table, or JSON for scripts.",
    )
    return option(func)


class ErrorReportingGroup(click.Group):
    """Turns mlgrid's typed errors into a one-line ``Error: CODE: message`` and exit code 1,
    instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlgridException as exc:
            raise click.ClickException(str(exc)) from exc


#: ``--view/-v``: which lifecycle stages a search shows (MLflow's ViewType names).
view_option = click.option(
    "--view",
    "-v",
    type=click.Choice(["active_only", "deleted_only", "all"], case_sensitive=False),
    default="active_only",
    show_default=True,
)
