"""Registry speed through real servers: ``python tests/registry/bench_registry.py [--pg URL]``.

Phases (the issue's): create 1,000 versions of one model, search versions by name (the 1,000
come back), get a version by alias. Each phase runs against the registry service alone (its own
gRPC server on TCP) and through a full stack (gateway + services), on SQLite (and PostgreSQL
when ``--pg`` names a database). Not collected by pytest (no ``test_`` prefix); bench/ holds the
side-by-side comparison with MLflow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ for fixtures.stack

from fixtures.stack import start_stack

from mlgrid.client import Client
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server


def _timed(repeat: int, call: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def run_phases(client: Client, versions: int, label: str) -> dict[str, float]:
    name = f"bench-{int(time.time() * 1000)}"
    client.create_registered_model(name)
    start = time.perf_counter()
    for i in range(versions):
        client.create_model_version(name, f"s3://bucket/models/{name}/{i}")
    create_s = time.perf_counter() - start
    client.set_registered_model_alias(name, "champion", versions // 2)
    search = _timed(20, lambda: client.search_model_versions(f"name = '{name}'"))
    assert len(client.search_model_versions(f"name = '{name}'")) == versions
    by_alias = _timed(1000, lambda: client.get_model_version_by_alias(name, "champion"))
    result = {
        "create_versions_per_s": versions / create_s,
        "create_ms_each": 1000 * create_s / versions,
        "search_1000_ms_median": 1000 * statistics.median(search),
        "get_by_alias_ms_median": 1000 * statistics.median(by_alias),
    }
    print(
        f"{label:32} create {result['create_versions_per_s']:7.0f} versions/s "
        f"({result['create_ms_each']:.2f} ms each) | search {versions} by name "
        f"{result['search_1000_ms_median']:6.1f} ms | get by alias "
        f"{result['get_by_alias_ms_median']:.2f} ms"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--pg", default=None, help="postgresql+psycopg://… database to use too")
    args = parser.parse_args()
    stores = [("sqlite", None), *([("postgresql", args.pg)] if args.pg else [])]
    for kind, url in stores:
        with tempfile.TemporaryDirectory() as tmp:
            store = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            app = create_service_app("registry", ServiceConfig(backend_store_uri=store))
            server = start_server(app.services)
            try:
                run_phases(
                    Client(f"grpc://127.0.0.1:{server.port}"),
                    args.versions,
                    f"{kind}, service alone",
                )
            finally:
                server.stop(grace=0.5)
                app.close()
            with start_stack(Path(tmp) / "stack", backend_store_uri=url) as stack:
                run_phases(
                    Client(stack.tracking_uri), args.versions, f"{kind}, through the gateway"
                )


if __name__ == "__main__":
    main()
