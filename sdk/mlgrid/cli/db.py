"""``mlgrid db upgrade``: bring the tracking (and registry) schema to the latest version."""

from __future__ import annotations

import importlib

import click

from mlgrid import environment as env
from mlgrid.uris import redact_credentials


@click.group()
def db() -> None:
    """Database schema management."""


@db.command()
@click.option(
    "--backend-store-uri",
    default=lambda: env.MLGRID_BACKEND_STORE_URI.get(),
    show_default=env.MLGRID_BACKEND_STORE_URI.default,
    help="Tracking store to migrate [env MLGRID_BACKEND_STORE_URI].",
)
@click.option(
    "--registry-store-uri",
    default=lambda: env.MLGRID_REGISTRY_STORE_URI.get(),
    help="Registry store to migrate (default: the tracking store) [env MLGRID_REGISTRY_STORE_URI].",
)
def upgrade(backend_store_uri: str, registry_store_uri: str | None) -> None:
    """Apply every pending migration (safe to run again: does nothing when up to date)."""
    try:
        tracking = importlib.import_module("mlgrid_services.tracking.migrations")
    except ImportError as exc:
        raise click.ClickException(
            f"the tracking service is not installed ({exc}): pip install 'mlgrid[server]'"
        ) from None
    tracking.upgrade(backend_store_uri)
    # Never the password: this line ends up in `kubectl logs` and CI output.
    click.echo(f"tracking schema of {redact_credentials(backend_store_uri)} is up to date")
    try:
        registry = importlib.import_module("mlgrid_services.registry.migrations")
    except ModuleNotFoundError:
        return  # no registry service in this installation
    target = registry_store_uri or backend_store_uri
    registry.upgrade(target)
    click.echo(f"registry schema of {redact_credentials(target)} is up to date")
