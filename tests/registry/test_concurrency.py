"""Version numbers stay unique and gap-free when many clients create versions at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

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
