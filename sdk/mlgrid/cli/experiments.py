"""``mlgrid experiments …``: create, search, describe, rename, delete and restore."""

from __future__ import annotations

import click

from mlgrid.cli._tables import (
    ErrorReportingGroup,
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
from mlgrid.entities import Experiment, ViewType
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid.limits import SEARCH_RUNS_DEFAULT, SEARCH_RUNS_MAX


def _experiment_row(experiment: Experiment) -> list[object]:
    return [
        experiment.experiment_id,
        experiment.name,
        experiment.lifecycle_stage,
        format_timestamp(experiment.creation_time),
        experiment.artifact_location,
    ]


def _resolve(client: Client, experiment_id: str | None, experiment_name: str | None) -> Experiment:
    if (experiment_id is None) == (experiment_name is None):
        raise click.UsageError("give exactly one of --experiment-id or --experiment-name")
    if experiment_id is not None:
        return client.get_experiment(experiment_id)
    assert experiment_name is not None
    found = client.get_experiment_by_name(experiment_name)
    if found is None:
        raise ResourceDoesNotExist(f"experiment named {experiment_name!r} does not exist")
    return found


@click.group(cls=ErrorReportingGroup)
def experiments() -> None:
    """Manage experiments."""


@experiments.command("create")
@click.option("--experiment-name", "-n", required=True, help="Unique experiment name.")
@click.option("--artifact-location", "-l", default=None, help="Artifact root for its runs.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@tracking_uri_option
def create(
    experiment_name: str, artifact_location: str | None, tags: tuple[str, ...], tracking_uri: str
) -> None:
    """Create an experiment and print its id."""
    tag_map = parse_key_values(tags, "--tag")
    experiment_id = Client(tracking_uri).create_experiment(
        experiment_name, artifact_location, tag_map
    )
    click.echo(f"Created experiment {experiment_name!r} with id {experiment_id}")


@experiments.command("search")
@view_option
@click.option("--filter", "filter_string", default="", help="e.g. \"name LIKE 'prod%'\".")
@click.option("--order-by", multiple=True, help="e.g. 'creation_time DESC' (repeatable).")
@click.option(
    "--max-results",
    type=click.IntRange(1, SEARCH_RUNS_MAX),
    default=SEARCH_RUNS_DEFAULT,
    show_default=True,
)
@output_option
@tracking_uri_option
def search(
    view: str,
    filter_string: str,
    order_by: tuple[str, ...],
    max_results: int,
    output: str,
    tracking_uri: str,
) -> None:
    """List experiments."""
    found = Client(tracking_uri).search_experiments(
        view_type=ViewType.from_string(view),
        max_results=max_results,
        filter_string=filter_string,
        order_by=list(order_by),
    )
    if output == "json":
        print_json([e.to_dictionary() for e in found])
        return
    print_table(
        ["id", "name", "lifecycle", "created", "artifact location"],
        [_experiment_row(e) for e in found],
        empty="No experiments.",
    )


@experiments.command("describe")
@click.option("--experiment-id", "-x", default=None)
@click.option("--experiment-name", "-n", default=None)
@output_option
@tracking_uri_option
def describe(
    experiment_id: str | None, experiment_name: str | None, output: str, tracking_uri: str
) -> None:
    """Show one experiment with its tags."""
    experiment = _resolve(Client(tracking_uri), experiment_id, experiment_name)
    if output == "json":
        print_json(experiment.to_dictionary())
        return
    print_section(
        f"Experiment {experiment.experiment_id}",
        format_key_values(
            [
                ("name", experiment.name),
                ("lifecycle", experiment.lifecycle_stage),
                ("artifact location", experiment.artifact_location),
                ("created", format_timestamp(experiment.creation_time)),
                ("last updated", format_timestamp(experiment.last_update_time)),
            ]
        ),
    )
    print_section("Tags", format_table(["key", "value"], sorted(experiment.tags.items())))


@experiments.command("rename")
@click.option("--experiment-id", "-x", required=True)
@click.option("--new-name", required=True)
@tracking_uri_option
def rename(experiment_id: str, new_name: str, tracking_uri: str) -> None:
    """Rename an experiment."""
    Client(tracking_uri).rename_experiment(experiment_id, new_name)
    click.echo(f"Experiment {experiment_id} renamed to {new_name!r}")


@experiments.command("delete")
@click.option("--experiment-id", "-x", required=True)
@tracking_uri_option
def delete(experiment_id: str, tracking_uri: str) -> None:
    """Delete an experiment (soft: it and its runs can be restored)."""
    Client(tracking_uri).delete_experiment(experiment_id)
    click.echo(f"Experiment {experiment_id} deleted")


@experiments.command("restore")
@click.option("--experiment-id", "-x", required=True)
@tracking_uri_option
def restore(experiment_id: str, tracking_uri: str) -> None:
    """Restore a deleted experiment."""
    Client(tracking_uri).restore_experiment(experiment_id)
    click.echo(f"Experiment {experiment_id} restored")
