"""Quick performance check of the tracking service alone (no gateway), the benchmark's phases.

Not a test (pytest does not collect it). Run:

    .venv/bin/python tests/tracking/perf_tracking.py postgresql://postgres@127.0.0.1:5432/<db>

It starts the tracking service on port 0 in this process and drives it over gRPC from here.
Given ``grpc://host:port`` instead (e.g. a gateway started by ``mlgrid up``), it drives that.
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import sys
import time
import uuid

import grpc

from mlgrid.api.common.v1 import common_pb2 as c
from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc


def _cpu(pid: int | None) -> float:
    """CPU seconds used so far by the server process (0 when it is not ours to watch)."""
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _worker(args: tuple[str, str, int]) -> int:
    target, run_id, count = args
    stub = pb_grpc.TrackingServiceStub(grpc.insecure_channel(target))
    for i in range(count):
        stub.LogMetric(pb.LogMetricRequest(run_id=run_id, key="par", value=i, timestamp=i, step=i))
    return count


def _serve(uri: str, ports: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """The tracking service in its own process (as deployed), so the client's work does not
    share a GIL with the server's."""
    from mlgrid_services.common.config import ServiceConfig
    from mlgrid_services.common.server import start_server
    from mlgrid_services.tracking.app import create

    app = create(ServiceConfig(backend_store_uri=uri, default_artifact_root="file:///tmp/perf"))
    server = start_server(app.services)
    ports.put(server.port)
    stop.wait()
    server.stop(0)
    app.close()


def main(uri: str) -> None:
    server = None
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    if uri.startswith("grpc://"):
        target = uri[len("grpc://") :]
    else:
        ports = context.Queue()
        server = context.Process(target=_serve, args=(uri, ports, stop))
        server.start()
        target = f"127.0.0.1:{ports.get(timeout=60)}"
    pid = server.pid if server is not None else None
    s = pb_grpc.TrackingServiceStub(grpc.insecure_channel(target))
    eid = s.CreateExperiment(pb.CreateExperimentRequest(name=f"perf-{uuid.uuid4().hex}"))
    eid = eid.experiment_id

    n = 500
    cpu = _cpu(pid)
    started = time.perf_counter()
    for _ in range(n):
        tags = [c.Tag(key=f"t{j}", value="v") for j in range(3)]
        run = s.CreateRun(pb.CreateRunRequest(experiment_id=eid, tags=tags)).run
        params = [t.Param(key=f"p{j}", value=str(j)) for j in range(5)]
        s.LogBatch(pb.LogBatchRequest(run_id=run.info.run_id, params=params))
    print(f"create run + 5 params + 3 tags: {n / (time.perf_counter() - started):.0f} runs/s")
    print(f"  server CPU per run: {(_cpu(pid) - cpu) / n * 1e3:.2f} ms")
    run_id = run.info.run_id

    latencies = []
    cpu = _cpu(pid)
    for i in range(2000):
        a = time.perf_counter()
        s.LogMetric(pb.LogMetricRequest(run_id=run_id, key="m", value=i, timestamp=i, step=i))
        latencies.append(time.perf_counter() - a)
    print(f"single log_metric: p50 {statistics.median(latencies) * 1000:.2f} ms")
    print(f"  server CPU per call: {(_cpu(pid) - cpu) / 2000 * 1e3:.3f} ms")

    batches = [
        pb.LogBatchRequest(
            run_id=run_id,
            metrics=[
                t.Metric(key="big", value=i * 0.1, timestamp=b * 1000 + i, step=b * 1000 + i)
                for i in range(1000)
            ],
        )
        for b in range(100)
    ]
    cpu = _cpu(pid)
    started = time.perf_counter()
    for batch in batches:
        s.LogBatch(batch)
    print(f"log_batch of 1000: {100_000 / (time.perf_counter() - started):,.0f} points/s")
    print(f"  server CPU per batch: {(_cpu(pid) - cpu) / 100 * 1e3:.2f} ms")

    times = []
    for _ in range(5):
        a = time.perf_counter()
        request = pb.StreamMetricHistoryRequest(run_id=run_id, metric_key="big")
        count = sum(len(chunk.metrics) for chunk in s.StreamMetricHistory(request))
        times.append(time.perf_counter() - a)
    print(f"stream {count:,} points: median {statistics.median(times):.3f} s")

    eid2 = s.CreateExperiment(pb.CreateExperimentRequest(name=f"perf-search-{uuid.uuid4().hex}"))
    for _ in range(5000):
        run = s.CreateRun(pb.CreateRunRequest(experiment_id=eid2.experiment_id)).run
        s.LogBatch(
            pb.LogBatchRequest(
                run_id=run.info.run_id,
                params=[t.Param(key="lr", value=random.choice(["0.01", "0.1"]))],
                metrics=[t.Metric(key="acc", value=random.random(), timestamp=1)],
            )
        )
    for max_results in (0, 100):
        times = []
        for _ in range(30):
            a = time.perf_counter()
            found = s.SearchRuns(
                pb.SearchRunsRequest(
                    experiment_ids=[eid2.experiment_id],
                    filter="metrics.acc > 0.5 and params.lr = '0.01'",
                    order_by=["metrics.acc DESC"],
                    max_results=max_results,
                )
            )
            times.append(time.perf_counter() - a)
        print(
            f"search 5000 runs (max_results={max_results or 1000}, {len(found.runs)} returned): "
            f"p50 {statistics.median(times) * 1000:.1f} ms"
        )

    runs = [s.CreateRun(pb.CreateRunRequest(experiment_id=eid)).run.info.run_id for _ in range(8)]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_worker, [(target, runs[0], 5)] * 8)
        started = time.perf_counter()
        total = sum(pool.map(_worker, [(target, r, 500) for r in runs]))
        print(f"8 processes logging: {total / (time.perf_counter() - started):,.0f} calls/s")
    if server is not None:
        stop.set()
        server.join(10)


if __name__ == "__main__":
    main(sys.argv[1])
