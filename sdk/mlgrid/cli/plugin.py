"""``mlgrid plugin``: list the installed plugins, serve one as its own process."""

from __future__ import annotations

import logging

import click

from mlgrid.exceptions import MlgridException
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry, load_providers
from mlgrid.plugins.registry import installed_entry_points

#: Groups whose entry-point names are schemes (or backend names), and what they hold.
_SCHEME_GROUPS = {
    "tracking_store": "tracking store",
    "artifact_repository": "artifact repository",
    "model_registry_store": "model registry store",
    "project_backend": "project backend",
}
_PROVIDER_GROUPS = ("run_context_provider", "request_header_provider")


@click.group()
def plugin() -> None:
    """Inspect installed plugins and serve a plugin as its own service."""


@plugin.command("list")
def list_plugins() -> None:
    """Every installed plugin, imported now: ok, or the error (exit 1 if any failed)."""
    # Failures are shown in the listing; the registry's own log lines would repeat them.
    logging.getLogger("mlgrid.plugins").setLevel(logging.CRITICAL)
    broken = 0
    for key, kind in _SCHEME_GROUPS.items():
        group = ENTRY_POINT_GROUPS[key]
        registry: SchemeRegistry[object] = SchemeRegistry(group, kind)
        failures = {f.name: f for f in registry.check()}
        for entry in sorted(installed_entry_points(group), key=lambda e: e.name):
            failure = failures.get(entry.name)
            status = f"FAILED: {failure.error}" if failure else "ok"
            broken += failure is not None
            click.echo(f"{group}  {entry.name} = {entry.value}  {status}")
    for key in _PROVIDER_GROUPS:
        group = ENTRY_POINT_GROUPS[key]
        _, provider_failures = load_providers(group)
        failed = {f.name: f for f in provider_failures}
        for entry in sorted(installed_entry_points(group), key=lambda e: e.name):
            bad = failed.get(entry.name)
            broken += bad is not None
            click.echo(
                f"{group}  {entry.name} = {entry.value}  {f'FAILED: {bad.error}' if bad else 'ok'}"
            )
    if broken:
        # Non-zero, so scripts (image builds, CI) can check that every plugin loads.
        raise click.ClickException(f"{broken} plugin(s) failed to load")


@plugin.command("serve")
@click.argument("target", metavar="MODULE:CLASS")
@click.option("--scheme", required=True, help="URI scheme (or project backend name) it serves.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one (printed).",
)
@click.option(
    "--service",
    type=click.Choice(["tracking", "artifacts", "registry", "projects"]),
    default=None,
    help="The contract to serve (default: from the class's base class).",
)
@click.option(
    "--store-uri",
    default=None,
    help="Tracking/registry plugins: the store of calls that name none.",
)
@click.option(
    "--default-artifact-root",
    default=None,
    help="Tracking plugins: artifact root of new experiments.",
)
@click.option(
    "--gateway",
    default=None,
    help="host:port of the gateway, to reach other services (registry, projects).",
)
@click.option(
    "--grace",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds calls in flight get to finish on SIGTERM.",
)
def serve(
    target: str,
    scheme: str,
    host: str,
    port: int,
    service: str | None,
    store_uri: str | None,
    default_artifact_root: str | None,
    gateway: str | None,
    grace: float,
) -> None:
    """Serve plugin class MODULE:CLASS as its own service, announcing --scheme.

    The class's base class picks the contract: a tracking store, artifact repository, model
    registry store or project backend is served as the tracking, artifacts, registry or
    projects service. Route the scheme to the printed address in the gateway's config file.
    """
    try:
        from mlgrid_services.common.config import ServiceConfig
        from mlgrid_services.plugin_host.host import serve_plugin
    except ImportError as exc:
        raise click.ClickException(
            f"serving a plugin needs the server components: pip install 'mlgrid[server]' ({exc})"
        ) from exc
    config = ServiceConfig.from_env(
        default_artifact_root=default_artifact_root, gateway_target=gateway
    )
    try:
        serve_plugin(
            target,
            scheme,
            service=service,
            host=host,
            port=port,
            config=config,
            store_uri=store_uri,
            grace=grace,
            echo=click.echo,
        )
    except MlgridException as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
