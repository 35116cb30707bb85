"""``mlgrid run``: run a project and follow its output, as ``mlflow run``."""

from __future__ import annotations

import sys

import click

from mlgrid.exceptions import MlgridException

__all__ = ["run"]


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-P")
        if key in params:
            raise click.BadParameter(f"parameter {key!r} given twice", param_hint="-P")
        params[key] = value
    return params


@click.command("run")
@click.argument("uri")
@click.option("--entry-point", "-e", default="main", show_default=True, help="Entry point to run.")
@click.option("--version", "-v", default=None, help="Git commit, branch or tag (git projects).")
@click.option(
    "--param-list", "-P", "params", multiple=True, metavar="KEY=VALUE", help="A parameter."
)
@click.option("--experiment-name", default=None, help="Experiment (by name; created if missing).")
@click.option("--experiment-id", default=None, help="Experiment (by id).")
@click.option("--backend", "-b", default="local", show_default=True, help="Backend to run on.")
@click.option(
    "--backend-config",
    "-c",
    default=None,
    metavar="JSON|FILE",
    help="Backend configuration: a JSON file or inline JSON.",
)
@click.option(
    "--env-manager",
    type=click.Choice(["local", "virtualenv", "conda"]),
    default=None,
    help="Override the project's environment manager.",
)
@click.option("--run-name", default=None, help="Name of the tracking run.")
@click.option("--build-image", is_flag=True, help="Docker projects: build an image with the code.")
@click.option("--no-wait", is_flag=True, help="Return once the run has started.")
@click.option("--run-id", default=None, help="An existing active run to execute in.")
def run(
    uri: str,
    entry_point: str,
    version: str | None,
    params: tuple[str, ...],
    experiment_name: str | None,
    experiment_id: str | None,
    backend: str,
    backend_config: str | None,
    env_manager: str | None,
    run_name: str | None,
    build_image: bool,
    no_wait: bool,
    run_id: str | None,
) -> None:
    """Run the project at URI (a directory, git URI, or zip), following its output."""
    from mlgrid import projects
    from mlgrid.projects.errors import ExecutionException

    try:
        submitted = projects.run(
            uri,
            entry_point=entry_point,
            version=version,
            parameters=_parse_params(params),
            experiment_name=experiment_name,
            experiment_id=experiment_id,
            backend=backend,
            backend_config=backend_config,
            env_manager=env_manager,
            synchronous=not no_wait,
            run_name=run_name,
            build_image=build_image,
            run_id=run_id,
        )
    except ExecutionException as exc:
        click.echo(f"mlgrid run: {exc.message}", err=True)
        sys.exit(1)
    except MlgridException as exc:
        click.echo(f"mlgrid run: {exc}", err=True)
        sys.exit(2)
    if no_wait:
        click.echo(f"Run {submitted.run_id} submitted ({submitted.get_status()}).")
    else:
        click.echo(f"Run {submitted.run_id} FINISHED.", err=True)
