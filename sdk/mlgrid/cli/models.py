"""``mlgrid models …``: the model registry from the command line."""

from __future__ import annotations

from dataclasses import asdict

import click

from mlgrid.cli._tables import (
    ErrorReportingGroup,
    format_timestamp,
    output_option,
    parse_key_values,
    print_json,
    print_table,
    tracking_uri_option,
)
from mlgrid.client import Client
from mlgrid.limits import SEARCH_MODELS_DEFAULT, SEARCH_MODELS_MAX, SEARCH_VERSIONS_MAX
from mlgrid.registry.entities import ModelVersion, RegisteredModel

STAGE_CHOICES = click.Choice(["None", "Staging", "Production", "Archived"], case_sensitive=False)


def _model_row(model: RegisteredModel) -> list[object]:
    latest = max((int(v.version) for v in model.latest_versions), default=None)
    aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(model.aliases.items()))
    return [
        model.name,
        latest if latest is not None else "",
        aliases,
        format_timestamp(model.last_updated_timestamp),
        model.description,
    ]


def _version_row(version: ModelVersion) -> list[object]:
    return [
        version.version,
        version.current_stage,
        version.status,
        ", ".join(version.aliases),
        version.run_id,
        format_timestamp(version.creation_timestamp),
        version.source,
    ]


@click.group(cls=ErrorReportingGroup)
def models() -> None:
    """Manage registered models, their versions, stages and aliases."""


@models.command("create")
@click.argument("name")
@click.option("--description", "-d", default="", help="Free-text description.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@tracking_uri_option
def create(name: str, description: str, tags: tuple[str, ...], tracking_uri: str | None) -> None:
    """Create registered model NAME."""
    model = Client(tracking_uri).create_registered_model(
        name, parse_key_values(tags, "--tag"), description
    )
    click.echo(f"Created registered model {model.name!r}")


@models.command("register")
@click.argument("model_uri")
@click.argument("name")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Version tag (repeatable).")
@tracking_uri_option
def register(model_uri: str, name: str, tags: tuple[str, ...], tracking_uri: str | None) -> None:
    """Register MODEL_URI (e.g. runs:/<run_id>/model) as a new version of NAME."""
    from mlgrid.registry.fluent import register_model

    version = register_model(
        model_uri, name, parse_key_values(tags, "--tag"), client=Client(tracking_uri)
    )
    click.echo(f"Registered {model_uri} as version {version.version} of {name!r}")


@models.command("list")
@click.option("--filter", "filter_string", default="", help="e.g. \"name LIKE 'fraud%'\".")
@click.option("--order-by", multiple=True, help="e.g. 'last_updated_timestamp DESC' (repeatable).")
@click.option(
    "--max-results",
    type=click.IntRange(1, SEARCH_MODELS_MAX),
    default=SEARCH_MODELS_DEFAULT,
    show_default=True,
)
@output_option
@tracking_uri_option
def list_models(
    filter_string: str,
    order_by: tuple[str, ...],
    max_results: int,
    output: str,
    tracking_uri: str | None,
) -> None:
    """List registered models."""
    found = Client(tracking_uri).search_registered_models(
        filter_string, max_results, list(order_by)
    )
    if output == "json":
        print_json([asdict(m) for m in found])
        return
    print_table(["name", "latest", "aliases", "updated", "description"], map(_model_row, found))


@models.command("versions")
@click.argument("name")
@click.option(
    "--filter", "extra_filter", default="", help="More conditions, e.g. \"tags.env = 'prod'\"."
)
@click.option(
    "--max-results", type=click.IntRange(1, SEARCH_VERSIONS_MAX), default=1000, show_default=True
)
@output_option
@tracking_uri_option
def versions(
    name: str, extra_filter: str, max_results: int, output: str, tracking_uri: str | None
) -> None:
    """List the versions of registered model NAME, newest first."""
    quoted = name.replace("'", "''")
    filter_string = f"name = '{quoted}'" + (f" AND {extra_filter}" if extra_filter else "")
    client = Client(tracking_uri)
    client.get_registered_model(name)  # a missing model is an error, not an empty table
    found = client.search_model_versions(filter_string, max_results, ["version_number DESC"])
    if output == "json":
        print_json([asdict(v) for v in found])
        return
    print_table(
        ["version", "stage", "status", "aliases", "run id", "created", "source"],
        map(_version_row, found),
    )


@models.command("set-alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@tracking_uri_option
def set_alias(name: str, alias: str, version: str, tracking_uri: str | None) -> None:
    """Point ALIAS of model NAME at VERSION."""
    Client(tracking_uri).set_registered_model_alias(name, alias, version)
    click.echo(f"Alias {alias!r} of {name!r} now points at version {version}")


@models.command("delete-alias")
@click.argument("name")
@click.argument("alias")
@tracking_uri_option
def delete_alias(name: str, alias: str, tracking_uri: str | None) -> None:
    """Delete ALIAS of model NAME."""
    Client(tracking_uri).delete_registered_model_alias(name, alias)
    click.echo(f"Deleted alias {alias!r} of {name!r}")


@models.command("transition")
@click.argument("name")
@click.argument("version")
@click.argument("stage", type=STAGE_CHOICES)
@click.option(
    "--archive-existing", is_flag=True, help="Move the versions now in STAGE to Archived."
)
@tracking_uri_option
def transition(
    name: str, version: str, stage: str, archive_existing: bool, tracking_uri: str | None
) -> None:
    """Move VERSION of model NAME to STAGE (None, Staging, Production, Archived)."""
    moved = Client(tracking_uri).transition_model_version_stage(
        name, version, stage, archive_existing
    )
    click.echo(f"Version {moved.version} of {name!r} is now in stage {moved.current_stage}")


@models.command("delete")
@click.argument("name")
@click.option("--version", default=None, help="Delete only this version.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@tracking_uri_option
def delete(name: str, version: str | None, yes: bool, tracking_uri: str | None) -> None:
    """Delete registered model NAME with all its versions (or only --version)."""
    client = Client(tracking_uri)
    if version is not None:
        client.delete_model_version(name, version)
        click.echo(f"Deleted version {version} of {name!r}")
        return
    if not yes:
        click.confirm(f"Delete registered model {name!r} and all its versions?", abort=True)
    client.delete_registered_model(name)
    click.echo(f"Deleted registered model {name!r}")


# -- shipping a model: serve, predict, build-docker (MLflow's `mlflow models ...` flags) ----------

ENV_MANAGERS = click.Choice(["local", "virtualenv", "conda"])
model_uri_option = click.option(
    "--model-uri",
    "-m",
    required=True,
    metavar="URI",
    help="The model: a local path, runs:/<run_id>/<path>, models:/<name>/<version|stage|alias>, "
    "models:/<model_id> or an artifact URI.",
)
env_manager_option = click.option(
    "--env-manager",
    type=ENV_MANAGERS,
    default="local",
    show_default=True,
    help="Where the model runs: this Python (local), a virtualenv built from the model's "
    "python_env.yaml and requirements.txt, or a conda env from its conda.yaml.",
)


def _use_tracking_uri(tracking_uri: str | None) -> None:
    if tracking_uri:
        import mlgrid

        mlgrid.set_tracking_uri(tracking_uri)


@models.command("serve", context_settings={"help_option_names": ["--help"]})
@model_uri_option
@click.option("--host", "-h", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=5000, show_default=True)
@click.option("--workers", "-w", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--timeout",
    "-t",
    type=click.FloatRange(0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a prediction may take; longer ones are answered with 503.",
)
@click.option(
    "--max-body-mib",
    type=click.FloatRange(0, min_open=True),
    default=64.0,
    show_default=True,
    help="Largest request body accepted (413 above it).",
)
@env_manager_option
@click.option(
    "--no-conda", is_flag=True, hidden=True, help="MLflow's old flag: --env-manager local"
)
@tracking_uri_option
def serve(
    model_uri: str,
    host: str,
    port: int,
    workers: int,
    timeout: float,
    max_body_mib: float,
    env_manager: str,
    no_conda: bool,
    tracking_uri: str | None,
) -> None:
    """Serve a model over HTTP with MLflow's scoring protocol (POST /invocations)."""
    from mlgrid.models.server import ServeOptions
    from mlgrid.models.shipping import serve_model

    _use_tracking_uri(tracking_uri)
    options = ServeOptions(host, port, workers, timeout, int(max_body_mib * 1024 * 1024))
    serve_model(model_uri, options, "local" if no_conda else env_manager)


@models.command("predict")
@model_uri_option
@click.option(
    "--input-path", "-i", required=True, type=click.Path(dir_okay=False), help="Input file."
)
@click.option(
    "--content-type",
    "-t",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="json: a scoring request body (dataframe_split, dataframe_records, instances or inputs); "
    "csv: a table with a header row.",
)
@click.option("--output-path", "-o", type=click.Path(dir_okay=False), help="Default: stdout.")
@env_manager_option
@tracking_uri_option
def predict(
    model_uri: str,
    input_path: str,
    content_type: str,
    output_path: str | None,
    env_manager: str,
    tracking_uri: str | None,
) -> None:
    """Predict on a file with a model, as its server would answer."""
    from mlgrid.models.shipping import predict_file

    _use_tracking_uri(tracking_uri)
    result = predict_file(model_uri, input_path, content_type, env_manager)
    if output_path:
        with open(output_path, "wb") as fh:
            fh.write(result)
    else:
        click.echo(result.decode())


@models.command("build-docker")
@click.option(
    "--model-uri", "-m", required=True, metavar="URI", help="The model to put in the image."
)
@click.option("--name", "-n", required=True, help="Tag of the image, e.g. fraud-model:3.")
@click.option(
    "--base-image",
    default=None,
    help="An image with python3 and its venv module, of this Python's minor version "
    "(default: python:<major>.<minor>-slim).",
)
@tracking_uri_option
def build_docker(
    model_uri: str, name: str, base_image: str | None, tracking_uri: str | None
) -> None:
    """Build an image that serves the model on port 8080 (docker run -p 5001:8080 NAME)."""
    import sys

    from mlgrid.models.docker_image import build_model_image
    from mlgrid.pyfunc import get_model_dir

    _use_tracking_uri(tracking_uri)

    def log(text: str) -> None:
        sys.stderr.write(text)

    image_id = build_model_image(get_model_dir(model_uri), name, base_image, log)
    click.echo(f"Built image {name} ({image_id})")
