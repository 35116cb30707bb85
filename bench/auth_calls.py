"""What the auth checks alone cost a tracking call, in CPU: the service's interceptor (identify,
the method's rule, afterwards) around a servicer that does nothing, on a real auth store.

    .venv/bin/python -m bench.auth_calls [--store-uri postgresql://...] [--calls 2000]

Prints, per method, the CPU microseconds per call with warm caches (the steady state: every
call between two cache refreshes), for a token on a tunnel and for the gateway's assertion;
then what a refresh costs one call; then how many store reads 8 concurrent callers make when
their entries expire together. ``bench.auth_overhead`` and ``make bench`` measure whole calls.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.protocol import AUTHORIZATION_METADATA, IDENTITY_METADATA
from mlgrid_services.common.auth.identity import Identity
from mlgrid_services.common.auth.interceptor import AuthInterceptor
from mlgrid_services.common.auth.permissions import Permission, ResourceKind
from mlgrid_services.common.auth.runtime import AuthRuntime
from mlgrid_services.common.auth.settings import AuthSettings
from mlgrid_services.tracking.access_rules import tracking_rules

SERVICE = pb.DESCRIPTOR.services_by_name["TrackingService"].full_name
EXPERIMENT_ID = "1"


class _Context:
    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self._metadata


class _Details:
    def __init__(self, method: str, metadata: list[tuple[str, str]]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class _Domain:
    """Answers the rules' one question: which experiment run "r1" belongs to."""

    def get_run(self, _run_id: str) -> Any:
        response = pb.CreateRunResponse()
        response.run.info.experiment_id = EXPERIMENT_ID
        return response.run


def _requests() -> dict[str, Any]:
    created = pb.CreateRunResponse()
    created.run.info.run_id, created.run.info.experiment_id = "r2", EXPERIMENT_ID
    batch = pb.LogBatchRequest(run_id="r1")
    batch.metrics.extend(tracking_pb2.Metric(key="m", value=1.0, step=i) for i in range(1000))
    return {
        "LogMetric": (pb.LogMetricRequest(run_id="r1", key="m", value=1.0), None),
        "LogBatch (1000)": (batch, None),
        "CreateRun": (pb.CreateRunRequest(experiment_id=EXPERIMENT_ID), created),
        "GetMetricHistory": (pb.GetMetricHistoryRequest(run_id="r1", metric_key="m"), None),
        "SearchRuns": (pb.SearchRunsRequest(experiment_ids=[EXPERIMENT_ID]), None),
    }


def _wrapped(interceptor: AuthInterceptor, name: str, md: list[Any], answer: Any) -> Any:
    handler = grpc.unary_unary_rpc_method_handler(lambda _request, _context: answer)
    method = f"/{SERVICE}/{name.split(' ')[0]}"
    return interceptor.intercept_service(lambda _d: handler, _Details(method, md)).unary_unary


#: The store's reads on the per-call path (a token's holder, the caller's grants, workspaces).
_READS = (
    "subject_view",
    "token_holder",
    "password_record",
    "has_workspaces",
    "list_workspaces",
    "resource_workspaces",
    "linked_groups",
)


class _Reads:
    """Counts the per-call path's store reads (the store's own methods, wrapped)."""

    def __init__(self, store: Any) -> None:
        self.count = 0
        for name in _READS:
            if hasattr(store, name):
                setattr(store, name, self._counted(getattr(store, name)))

    def _counted(self, read: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.count += 1
            return read(*args)

        return counted


def _header_cost(calls: int) -> tuple[float, float]:
    """CPU µs per call (client and server in this process) of an empty gRPC call without and
    with an ``authorization`` header like the SDK's: what sending credentials on every call
    costs, whoever checks them. Best of 3 alternations."""
    from concurrent import futures

    class Echo(grpc.GenericRpcHandler):
        def service(self, _details: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(lambda request, _context: request)

    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers([Echo()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    header = [(AUTHORIZATION_METADATA, "Bearer mlg_" + "x" * 43)]
    best: dict[bool, float] = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/bench.Echo/Call")
        for with_header in (False, True) * 3:
            metadata = header if with_header else None
            for _ in range(200):
                call(b"", metadata=metadata)
            start = time.process_time()
            for _ in range(calls):
                call(b"", metadata=metadata)
            spent = (time.process_time() - start) / calls * 1e6
            best[with_header] = min(best.get(with_header, spent), spent)
    server.stop(0)
    return best[False], best[True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-uri", help="the auth store (default: a new SQLite file)")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    uri = args.store_uri or f"sqlite:///{Path(tempfile.mkdtemp()) / 'auth.db'}"
    settings = AuthSettings(
        enabled=True, secret="bench-secret-0123456789abcdef", store_uri=uri, cache_seconds=2.0
    )
    runtime = AuthRuntime(settings)
    store = runtime.store
    counter = _Reads(store)
    store.create_user("bench-user", "bench-password")
    token = store.create_token("bench-user", "bench", 0)[1]
    store.set_grant(
        ResourceKind.EXPERIMENT, EXPERIMENT_ID, Permission.MANAGE, username="bench-user"
    )
    interceptor = AuthInterceptor(runtime, tracking_rules(lambda: _Domain()), {SERVICE})  # type: ignore[arg-type,return-value]
    assertion = runtime.signer.sign(Identity("bench-user", False, ("default",), "password"))
    routes = {
        "token (tunnel)": [(AUTHORIZATION_METADATA, f"Bearer {token}")],
        "assertion (gateway)": [(IDENTITY_METADATA, assertion)],
    }
    print(f"auth store: {uri.split(':', 1)[0]}; CPU µs per call, best of 5 x {args.calls}")
    for route, md in routes.items():
        for name, (request, answer) in _requests().items():
            call, context = _wrapped(interceptor, name, md, answer), _Context(md)
            call(request, context)
            best = []
            for _ in range(5):
                start = time.thread_time()
                for _ in range(args.calls):
                    call(request, context)
                best.append((time.thread_time() - start) / args.calls * 1e6)
            print(f"  {route:20} {name:17} {min(best):6.1f} µs warm")
    md = routes["token (tunnel)"]
    request, answer = _requests()["LogMetric"]
    call, context = _wrapped(interceptor, "LogMetric", md, answer), _Context(md)
    spent = []
    for _ in range(100):
        runtime.changed()
        start = time.thread_time()
        call(request, context)
        spent.append((time.thread_time() - start) * 1e3)
    print(f"  a call that refreshes every cache: {statistics.median(spent):.2f} ms CPU (median)")
    reads = []
    for _ in range(20):
        runtime.changed()
        before = counter.count
        gate = threading.Barrier(8)

        def one(gate: threading.Barrier = gate) -> None:
            gate.wait()
            call(request, context)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        reads.append(counter.count - before)
    print(
        f"  8 concurrent calls, every entry expired: {statistics.median(reads):.0f} store reads "
        f"(median of 20; {min(reads)}..{max(reads)})"
    )
    runtime.close()
    without, with_header = _header_cost(args.calls)
    print(
        f"  an empty gRPC call: {without:.0f} µs CPU, {with_header:.0f} µs with an authorization "
        f"header (+{with_header - without:.0f} µs, client and server)"
    )


if __name__ == "__main__":
    main()
