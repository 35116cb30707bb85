"""``mlgrid runs …``: create, search (list), describe, delete and restore."""

from __future__ import annotations

import click

from mlgrid.cli._tables import (
    ErrorReportingGroup,
    format_duration,
    format_key_values,
    format_table,
    format_timestamp,
    output_option,
    parse_key_values,
    print_json,
    print_section,
    print_table,
    tracking_uri_option,
    view_option,
)
from mlgrid.client import Client
from mlgrid.context import resolve_tags
from mlgrid.entities import Run, ViewType
from mlgrid.limits import SEARCH_RUNS_MAX


def _run_row(run: Run) -> list[object]:
    info = run.info
    return [
        info.run_id,
        info.run_name,
        info.experiment_id,
        info.status,
        format_timestamp(info.start_time),
        format_duration(info.start_time, info.end_time),
        info.user_id,
    ]


@click.group(cls=ErrorReportingGroup)
def runs() -> None:
    """Manage runs."""


@runs.command("create")
@click.option("--experiment-id", "-x", default="0", show_default=True)
@click.option("--run-name", default=None, help="Generated when not given.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@tracking_uri_option
def create(
    experiment_id: str, run_name: str | None, tags: tuple[str, ...], tracking_uri: str
) -> None:
    """Create a RUNNING run (e.g. for a job that logs to it through MLGRID_RUN_ID)."""
    run = Client(tracking_uri).create_run(
        experiment_id, tags=resolve_tags(parse_key_values(tags, "--tag")), run_name=run_name
    )
    click.echo(f"Created run {run.info.run_id} ({run.info.run_name}) in experiment {experiment_id}")


@runs.command("search")
@click.option(
    "--experiment-id", "-x", "experiment_ids", multiple=True, default=("0",), show_default=True
)
@click.option("--filter", "filter_string", default="", help='e.g. "metrics.acc > 0.9".')
@click.option("--order-by", multiple=True, help="e.g. 'metrics.acc DESC' (repeatable).")
@click.option(
    "--max-results", type=click.IntRange(1, SEARCH_RUNS_MAX), default=100, show_default=True
)
@view_option
@output_option
@tracking_uri_option
def search(
    experiment_ids: tuple[str, ...],
    filter_string: str,
    order_by: tuple[str, ...],
    max_results: int,
    view: str,
    output: str,
    tracking_uri: str,
) -> None:
    """List runs of one or more experiments."""
    found = Client(tracking_uri).search_runs(
        list(experiment_ids),
        filter_string=filter_string,
        run_view_type=ViewType.from_string(view),
        max_results=max_results,
        order_by=list(order_by),
    )
    if output == "json":
        print_json([run.to_dictionary() for run in found])
        return
    print_table(
        ["run id", "name", "experiment", "status", "started", "duration", "user"],
        [_run_row(run) for run in found],
        empty="No runs.",
    )


runs.add_command(search, "list")  # MLflow's name for the same command


@runs.command("describe")
@click.option("--run-id", "-r", required=True)
@output_option
@tracking_uri_option
def describe(run_id: str, output: str, tracking_uri: str) -> None:
    """Show a run: metadata, params, latest metrics and tags."""
    run = Client(tracking_uri).get_run(run_id)
    if output == "json":
        print_json(run.to_dictionary())
        return
    info = run.info
    print_section(
        f"Run {info.run_id}",
        format_key_values(
            [
                ("name", info.run_name),
                ("experiment", info.experiment_id),
                ("status", info.status),
                ("user", info.user_id),
                ("started", format_timestamp(info.start_time)),
                ("ended", format_timestamp(info.end_time)),
                ("duration", format_duration(info.start_time, info.end_time)),
                ("lifecycle", info.lifecycle_stage),
                ("artifact uri", info.artifact_uri),
            ]
        ),
    )
    print_section("Params", format_table(["key", "value"], sorted(run.data.params.items())))
    metric_rows = sorted(
        (m.key, m.value, m.step, format_timestamp(m.timestamp)) for m in run.data._metric_objs
    )
    print_section("Metrics", format_table(["key", "value", "step", "logged"], metric_rows))
    print_section("Tags", format_table(["key", "value"], sorted(run.data.tags.items())))


@runs.command("delete")
@click.option("--run-id", "-r", required=True)
@tracking_uri_option
def delete(run_id: str, tracking_uri: str) -> None:
    """Delete a run (soft: it can be restored)."""
    Client(tracking_uri).delete_run(run_id)
    click.echo(f"Run {run_id} deleted")


@runs.command("restore")
@click.option("--run-id", "-r", required=True)
@tracking_uri_option
def restore(run_id: str, tracking_uri: str) -> None:
    """Restore a deleted run."""
    Client(tracking_uri).restore_run(run_id)
    click.echo(f"Run {run_id} restored")
