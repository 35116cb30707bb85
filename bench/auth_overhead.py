"""What auth costs a tracking call: ``log_metric`` (and ``log_batch``) through a real gateway and
tracking server with auth off and on, same process, same SQLite store kind.

    .venv/bin/python -m bench.auth_overhead [--calls 2000] [--route tunnel|gateway]

``make bench`` sets ``mlgrid up`` with auth on beside auth off on every tracking phase (the
``mlgrid-auth`` target and its table, bench/report.py); this isolates the per-call price of
authentication and permission checks in one process (docs/auth.md, "Cost").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mlgrid.client import MlflowClient
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.auth.runtime import AuthRuntime, auth_runtime, release_runtime
from mlgrid_services.common.auth.settings import AuthSettings
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.gateway.app import start_gateway


def _measure(auth_on: bool, calls: int, route: str) -> tuple[float, float]:
    """(median ms per log_metric, median ms per 100-metric log_batch)."""
    workdir = Path(tempfile.mkdtemp(prefix="mlgrid-auth-bench-"))
    store = f"sqlite:///{workdir / 'mlgrid.db'}"
    settings = AuthSettings(
        enabled=auth_on,
        secret="bench-secret-0123456789abcdef",
        store_uri=store,
        admin_username="admin",
        admin_password="admin-password",
    )
    config = ServiceConfig(
        backend_store_uri=store, default_artifact_root=(workdir / "a").as_uri(), auth=settings
    )
    runtime = auth_runtime(settings)
    gateway_auth = AuthRuntime(settings) if auth_on else None
    app = create_service_app("tracking", config)
    server = start_server(app.services, auth=runtime)
    gateway = start_gateway(tunnel_port=0, auth=gateway_auth, backends=[server.address])
    os.environ["MLGRID_GATEWAY_TUNNELS"] = "true" if route == "tunnel" else "false"
    if auth_on:
        os.environ["MLGRID_TRACKING_USERNAME"] = "bench-user"
        os.environ["MLGRID_TRACKING_PASSWORD"] = "bench-password"
        assert runtime is not None
        runtime.store.create_user("bench-user", "bench-password")
    try:
        client = MlflowClient(tracking_uri=f"grpc://{gateway.address}")
        experiment_id = client.create_experiment("bench")
        run_id = client.create_run(experiment_id).info.run_id
        for step in range(50):  # warm up: channels, caches, the first scrypt
            client.log_metric(run_id, "warm", 1.0, step=step)
        single = []
        for step in range(calls):
            start = time.perf_counter()
            client.log_metric(run_id, "m", float(step), step=step)
            single.append(time.perf_counter() - start)
        from mlgrid.entities import Metric

        batches = []
        for batch in range(max(calls // 20, 20)):
            metrics = [Metric("b", float(i), 0, batch * 100 + i) for i in range(100)]
            start = time.perf_counter()
            client.log_batch(run_id, metrics=metrics)
            batches.append(time.perf_counter() - start)
        return statistics.median(single) * 1000, statistics.median(batches) * 1000
    finally:
        for name in ("MLGRID_TRACKING_USERNAME", "MLGRID_TRACKING_PASSWORD"):
            os.environ.pop(name, None)
        gateway.stop(0.5)
        server.stop(0.5)
        app.close()
        release_runtime(settings)
        if gateway_auth is not None:
            gateway_auth.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--route", choices=["tunnel", "gateway"], default="tunnel")
    args = parser.parse_args()
    results = {}
    for auth_on in (False, True, False, True):  # interleaved, against drift
        single, batch = _measure(auth_on, args.calls, args.route)
        results.setdefault(auth_on, []).append((single, batch))
    off = [min(r[i] for r in results[False]) for i in (0, 1)]
    on = [min(r[i] for r in results[True]) for i in (0, 1)]
    print(f"route: {args.route}, {args.calls} log_metric calls, best of 2 runs each")
    print(f"log_metric p50   off {off[0]:.3f} ms   on {on[0]:.3f} ms   {on[0] / off[0] - 1:+.1%}")
    print(f"log_batch(100) p50 off {off[1]:.3f} ms   on {on[1]:.3f} ms   {on[1] / off[1] - 1:+.1%}")


if __name__ == "__main__":
    main()
