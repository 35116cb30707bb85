"""Version numbers stay unique and gap-free when many clients create versions at once."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc

from mlgrid.api.registry.v1 import registry_service_pb2 as pb
from mlgrid.api.registry.v1 import registry_service_pb2_grpc
from mlgrid.client import Client
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore

THREADS = 8
PER_THREAD = 25


def test_racing_creators_get_unique_gap_free_versions(store: SqlRegistryStore) -> None:
    store.create_registered_model("raced")
    start = threading.Barrier(THREADS)

    def create_many(worker: int) -> list[int]:
        start.wait()  # all threads hit the store at the same moment
        return [
            int(store.create_model_version("raced", f"s3://b/{worker}/{i}").version)
            for i in range(PER_THREAD)
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        per_worker = list(pool.map(create_many, range(THREADS)))
    handed_out = [n for numbers in per_worker for n in numbers]
    assert sorted(handed_out) == list(range(1, THREADS * PER_THREAD + 1))
    for numbers in per_worker:  # each creator sees its own versions increase
        assert numbers == sorted(numbers)
    stored = store.search_model_versions("name = 'raced'", max_results=1000).items
    assert sorted(int(v.version) for v in stored) == list(range(1, THREADS * PER_THREAD + 1))
    # Each stored version kept the source its creator sent with that number.
    by_number = {int(v.version): v.source for v in stored}
    for worker, numbers in enumerate(per_worker):
        assert [by_number[n] for n in numbers] == [
            f"s3://b/{worker}/{i}" for i in range(PER_THREAD)
        ]


def test_racing_clients_through_the_service_on_postgresql(registry_postgres_url: str) -> None:
    """The same promise end to end: gRPC clients racing against the service on PostgreSQL."""
    app = create_service_app("registry", ServiceConfig(backend_store_uri=registry_postgres_url))
    running = start_server(app.services)
    try:
        target = f"127.0.0.1:{running.port}"
        name = f"raced-{uuid.uuid4().hex[:8]}"
        Client(f"grpc://{target}").create_registered_model(name)
        start = threading.Barrier(THREADS)

        def create_many(worker: int) -> list[int]:
            # One channel per worker, like separate client processes.
            with grpc.insecure_channel(target) as channel:
                stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
                start.wait()
                return [
                    int(
                        stub.CreateModelVersion(
                            pb.CreateModelVersionRequest(name=name, source=f"s3://b/{worker}/{i}")
                        ).model_version.version
                    )
                    for i in range(10)
                ]

        with ThreadPoolExecutor(THREADS) as pool:
            handed_out = sorted(n for ns in pool.map(create_many, range(THREADS)) for n in ns)
        assert handed_out == list(range(1, THREADS * 10 + 1))
    finally:
        running.stop(grace=0.5)
        app.close()
