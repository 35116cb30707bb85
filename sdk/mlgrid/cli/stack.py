"""``mlgrid up`` (the whole local stack) and ``mlgrid server <name>`` (one process)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from mlgrid import environment as env

#: Ports ``mlgrid server`` binds by default, one per process kind (``--port 0`` picks a free one).
DEFAULT_PORTS = {
    "gateway": 50051,
    "tracking": 50052,
    "artifacts": 50053,
    "registry": 50054,
    "projects": 50055,
}
#: The gateway's tunnel listener (services/gateway/tunnel.py), announced to clients.
DEFAULT_TUNNEL_PORT = 50050
#: The gateway's MLflow REST API (services/gateway/rest): the port `mlflow server` uses, so MLflow
#: clients set up for a local MLflow server work unchanged.
DEFAULT_REST_PORT = 5000


def _tls_options(gateway_only: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--tls-cert, --tls-key and --tls-client-ca (each defaulting to its MLGRID_GATEWAY_TLS_*)."""
    prefix = "Gateway only: " if gateway_only else ""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for name, variable, text in reversed(
            [
                (
                    "--tls-cert",
                    env.MLGRID_GATEWAY_TLS_CERT,
                    "certificate chain (PEM) served with TLS on the gateway's gRPC, tunnel and "
                    "REST ports (with --tls-key)",
                ),
                ("--tls-key", env.MLGRID_GATEWAY_TLS_KEY, "private key (PEM) of --tls-cert"),
                (
                    "--tls-client-ca",
                    env.MLGRID_GATEWAY_TLS_CLIENT_CA,
                    "CA bundle (PEM) of client certificates: every client must present one it "
                    "signed (mutual TLS)",
                ),
            ]
        ):
            command = click.option(
                name,
                default=lambda variable=variable: variable.get(),
                type=click.Path(dir_okay=False),
                help=f"{prefix}{text} [env {variable.name}].",
            )(command)
        return command

    return decorate


def _tls_settings(cert: str | None, key: str | None, client_ca: str | None) -> Any:
    """The gateway's TlsSettings for these files (None: plaintext); a usage error naming the
    option when they do not fit."""
    if not (cert or key or client_ca):
        return None  # plaintext; the supervisor does not load gRPC and ssl for nothing
    from mlgrid_services.gateway.tls import TlsConfigError, TlsSettings

    try:
        return TlsSettings.from_files(cert, key, client_ca)
    except TlsConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="TLS") from None


def _require_server() -> None:
    try:
        import mlgrid_services  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "this command runs mlgrid's services, which need the server components: "
            "pip install 'mlgrid[server]'"
        ) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the gateway binds.")
@click.option(
    "--port", default=50051, show_default=True, type=int, help="Gateway port (0: any free port)."
)
@click.option(
    "--backend-store-uri",
    default=lambda: env.MLGRID_BACKEND_STORE_URI.get(),
    show_default=env.MLGRID_BACKEND_STORE_URI.default,
    help="Tracking store: sqlite:///path or postgresql://user@host/db.",
)
@click.option(
    "--registry-store-uri", default=None, help="Registry store (default: the tracking store)."
)
@click.option(
    "--default-artifact-root",
    default=lambda: env.MLGRID_DEFAULT_ARTIFACT_ROOT.get() or "",
    show_default="./mlgrid-artifacts",
    help="Artifact root of experiments that name none (file:///… or s3://…).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Gateway routes file (YAML; see services/gateway/README.md).",
)
@click.option(
    "--tunnels/--no-tunnels",
    default=True,
    show_default=True,
    help="Let clients tunnel tracking and registry calls to their backend through the gateway "
    "(fewer gRPC hops; the gateway announces the port).",
)
@click.option(
    "--direct-routes/--no-direct-routes",
    default=True,
    show_default=True,
    help="Let clients on this host call the tracking, registry and artifacts services at their "
    "own loopback addresses, with no relay (the services check credentials themselves); never "
    "with TLS.",
)
@click.option(
    "--rest-port",
    default=None,
    type=int,
    help=f"Port of MLflow's REST API on the gateway (default {DEFAULT_REST_PORT}, or any free "
    "port with --port 0) [env MLGRID_REST_PORT].",
)
@click.option("--no-rest", is_flag=True, help="Do not serve MLflow's REST API.")
@_tls_options(gateway_only=False)
@click.option(
    "--allow-open",
    is_flag=True,
    help="Serve without authentication on an address other than loopback, on purpose "
    "[env MLGRID_ALLOW_OPEN].",
)
@click.option("--grace", default=10.0, show_default=True, help="Seconds to finish calls on stop.")
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Processes of each of tracking, registry, artifacts and projects; the gateway "
    "balances calls over them (projects replicas share their runs through leases).",
)
def up(
    host: str,
    port: int,
    backend_store_uri: str,
    registry_store_uri: str | None,
    default_artifact_root: str,
    config_path: str | None,
    tunnels: bool,
    direct_routes: bool,
    rest_port: int | None,
    no_rest: bool,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    allow_open: bool,
    grace: float,
    replicas: int,
) -> None:
    """Start the gateway and every service as local processes; Ctrl-C stops them.

    With --tls-cert and --tls-key the gateway's ports serve TLS (clients use grpcs:// and
    https://); the services reach each other through a plaintext gateway port on 127.0.0.1.
    """
    _require_server()
    if allow_open:
        env.MLGRID_ALLOW_OPEN.set(True)  # the children read it
    from mlgrid_services.stack import StackOptions, present_services, run_stack

    tls = _tls_settings(tls_cert, tls_key, tls_client_ca)
    options = StackOptions(
        host=host,
        port=port,
        backend_store_uri=backend_store_uri,
        registry_store_uri=registry_store_uri,
        default_artifact_root=default_artifact_root,
        config_path=os.path.abspath(config_path) if config_path else None,
        tunnels=tunnels,
        direct_routes=direct_routes,
        rest_port=None if no_rest else _rest_port(rest_port, port),
        tls_files=(
            None
            if tls is None
            else (
                str(tls.cert_file.resolve()),
                str(tls.key_file.resolve()),
                str(tls.client_ca_file.resolve()) if tls.client_ca_file else None,
            )
        ),
        grace=grace,
        replicas=replicas,
    )
    sys.exit(run_stack(options, present_services(), lambda text: click.echo(text, err=False)))


def _rest_port(asked: int | None, gateway_port: int) -> int:
    """The REST port: as asked (flag, then MLGRID_REST_PORT), else the default, else any free
    one beside a gateway on any free port."""
    from mlgrid.environment import MLGRID_REST_PORT

    if asked is not None:
        return asked
    from_env = MLGRID_REST_PORT.get()
    if from_env is not None:
        return from_env
    return 0 if gateway_port == 0 else DEFAULT_REST_PORT


def _tunnel_port(asked: int | None, gateway_port: int) -> int:
    """The tunnel port: as asked, else any free one beside a gateway on any free port."""
    if asked is not None:
        return asked
    return 0 if gateway_port == 0 else DEFAULT_TUNNEL_PORT


@click.command()
@click.argument("name", type=click.Choice(sorted(DEFAULT_PORTS)))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=None, type=int, help="Port (default per service; 0: any free).")
@click.option(
    "--backend-store-uri", default=None, help="Tracking store [env MLGRID_BACKEND_STORE_URI]."
)
@click.option(
    "--registry-store-uri", default=None, help="Registry store [env MLGRID_REGISTRY_STORE_URI]."
)
@click.option(
    "--default-artifact-root",
    default=None,
    help="Default artifact root [env MLGRID_DEFAULT_ARTIFACT_ROOT].",
)
@click.option(
    "--gateway-target",
    default=None,
    help="host:port of the gateway, through which a service reaches the others [env MLGRID_GATEWAY_TARGET].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=lambda: env.MLGRID_GATEWAY_CONFIG.get(),
    help="Gateway only: routes file (YAML) [env MLGRID_GATEWAY_CONFIG].",
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    help="Gateway only: a backend address to ask what it serves (repeatable) "
    "[env MLGRID_GATEWAY_BACKENDS, comma-separated].",
)
@click.option(
    "--tunnel-port",
    default=lambda: env.MLGRID_GATEWAY_TUNNEL_PORT.get(),
    type=int,
    help=f"Gateway only: port of the tunnel listener, announced to clients (default "
    f"{DEFAULT_TUNNEL_PORT}, or any free port with --port 0) [env MLGRID_GATEWAY_TUNNEL_PORT].",
)
@click.option(
    "--no-tunnel", is_flag=True, help="Gateway only: no tunnel listener; every call is forwarded."
)
@click.option(
    "--direct-routes",
    is_flag=True,
    help="Gateway only: tell clients on this host the loopback addresses of the tracking, "
    "registry and artifacts backends, to call them with no relay (plaintext gateways only).",
)
@click.option(
    "--rest-port",
    default=None,
    type=int,
    help=f"Gateway only: port of MLflow's REST API (default {DEFAULT_REST_PORT}, or any free "
    "port with --port 0) [env MLGRID_REST_PORT].",
)
@click.option("--no-rest", is_flag=True, help="Gateway only: do not serve MLflow's REST API.")
@_tls_options(gateway_only=True)
@click.option(
    "--internal-port",
    default=None,
    type=int,
    hidden=True,
    help="Gateway only, under mlgrid up with TLS: a plaintext port on 127.0.0.1 for the stack's "
    "own services.",
)
@click.option(
    "--rest-artifacts-root",
    default=None,
    help="Gateway only: the artifact root the REST API proxies as mlflow-artifacts:/ (default: "
    "the services' default artifact root) [env MLGRID_DEFAULT_ARTIFACT_ROOT].",
)
@click.option(
    "--grace", default=10.0, show_default=True, help="Seconds to finish calls on SIGTERM."
)
@click.option(
    "--allow-open",
    is_flag=True,
    help="Serve without authentication on an address other than loopback, on purpose "
    "[env MLGRID_ALLOW_OPEN].",
)
@click.option("--parent-pipe", is_flag=True, hidden=True, help="Run under `mlgrid up`.")
def server(
    name: str,
    host: str,
    port: int | None,
    backend_store_uri: str | None,
    registry_store_uri: str | None,
    default_artifact_root: str | None,
    gateway_target: str | None,
    config_path: str | None,
    backends: tuple[str, ...],
    tunnel_port: int | None,
    no_tunnel: bool,
    direct_routes: bool,
    rest_port: int | None,
    no_rest: bool,
    rest_artifacts_root: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    internal_port: int | None,
    grace: float,
    allow_open: bool,
    parent_pipe: bool,
) -> None:
    """Run one service (or the gateway) in this process, for deployments.

    Default ports: gateway 50051, tracking 50052, artifacts 50053, registry 50054, projects
    50055. Once serving, the process prints `mlgrid-ready {"name", "address", "pid"}` on stdout;
    SIGTERM stops it after calls in flight finish (within --grace).
    """
    _require_server()
    if allow_open:
        env.MLGRID_ALLOW_OPEN.set(True)
    from mlgrid.exceptions import MlgridException
    from mlgrid_services import launcher

    bind_port = DEFAULT_PORTS[name] if port is None else port
    if name == "gateway":
        from mlgrid_services.gateway.config import GatewayConfigError

        env_backends = [b.strip() for b in (env.MLGRID_GATEWAY_BACKENDS.get() or "").split(",")]
        tls = _tls_settings(tls_cert, tls_key, tls_client_ca)
        try:
            launcher.serve_gateway(
                host=host,
                port=bind_port,
                config_path=config_path,
                backends=[*backends, *(b for b in env_backends if b)],
                parent_pipe=parent_pipe,
                grace=grace,
                tunnel_port=None if no_tunnel else _tunnel_port(tunnel_port, bind_port),
                rest_port=None if no_rest else _rest_port(rest_port, bind_port),
                rest_artifacts_root=rest_artifacts_root,
                tls=tls,
                internal_port=internal_port,
                direct_routes=direct_routes,
            )
        except GatewayConfigError as exc:
            raise click.ClickException(str(exc)) from None
        except MlgridException as exc:  # bad settings (open on a public address, no secret)
            raise click.ClickException(exc.message) from None
        except OSError as exc:  # the public port is taken
            raise click.ClickException(
                f"{exc} (is another mlgrid gateway running there?)"
            ) from None
        return
    from mlgrid_services.common.config import ServiceConfig

    config = ServiceConfig.from_env(
        backend_store_uri=backend_store_uri,
        registry_store_uri=registry_store_uri,
        default_artifact_root=default_artifact_root,
        gateway_target=gateway_target,
    )
    try:
        launcher.serve_service(
            name, config, host=host, port=bind_port, parent_pipe=parent_pipe, grace=grace
        )
    except MlgridException as exc:  # bad settings: one line that says what to change
        raise click.ClickException(exc.message) from None
