"""The auth caches under load: while eight callers call at once through the real gateway (so
they find each cache entry stale together and share one read of it), a revoked token and a
lowered permission still refuse every call that starts ``CACHE_SECONDS`` after the change,
with UNAUTHENTICATED, or PERMISSION_DENIED naming the experiment and the permission; and
nothing a refused call sent lands."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc

from .conftest import CACHE_SECONDS, AuthStack

CALLERS = 8
#: (when the call started, its status, its details)
Outcome = tuple[float, grpc.StatusCode, str]


@contextmanager
def _callers(call: Callable[[int], object]) -> Iterator[list[Outcome]]:
    """``CALLERS`` threads making ``call(n)`` (n unique per call) until the block ends."""
    outcomes: list[Outcome] = []
    numbers = itertools.count()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                call(next(numbers))
                outcomes.append((started, grpc.StatusCode.OK, ""))
            except grpc.RpcError as err:
                outcomes.append((started, err.code(), err.details() or ""))

    threads = [threading.Thread(target=loop) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def _run_past_the_bound(changed: float) -> None:
    """Lets the callers go on until well after the change's bound."""
    time.sleep(max(0.0, changed + CACHE_SECONDS + 1.5 - time.monotonic()))


def _started_after_the_bound(
    done: list[Outcome], changed: float
) -> list[tuple[grpc.StatusCode, str]]:
    """(code, details) of the calls that started a cache period or more after ``changed``."""
    late = [
        (code, details) for started, code, details in done if started >= changed + CACHE_SECONDS
    ]
    assert late, "no call started after the bound"
    return late


def test_a_revoked_token_is_refused_within_the_cache_time_under_concurrent_calls(
    auth_stack: AuthStack,
) -> None:
    credentials = auth_stack.create_user("busy-token-owner")
    created = auth_stack.auth().CreateAccessToken(
        auth_pb.CreateAccessTokenRequest(name="busy"), metadata=credentials
    )
    bearer = [("authorization", f"Bearer {created.token}")]
    stub = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    search = trk.SearchExperimentsRequest(max_results=1)
    with _callers(lambda _n: stub.SearchExperiments(search, metadata=bearer, timeout=60)) as done:
        time.sleep(CACHE_SECONDS * 2)  # several cache periods with the token accepted
        revoking = time.monotonic()
        auth_stack.auth().RevokeAccessToken(
            auth_pb.RevokeAccessTokenRequest(token_id=created.access_token.token_id),
            metadata=credentials,
        )
        revoked = time.monotonic()
        _run_past_the_bound(revoked)
    assert any(s < revoking and code is grpc.StatusCode.OK for s, code, _ in done)
    late = _started_after_the_bound(done, revoked)
    assert {code for code, _ in late} == {grpc.StatusCode.UNAUTHENTICATED}, late[:3]
    assert all("access token is not valid" in details for _, details in late), late[:3]


def test_a_lowered_permission_refuses_logging_within_the_cache_time_under_concurrent_calls(
    auth_stack: AuthStack,
) -> None:
    owner = auth_stack.create_user("busy-owner")
    writer = auth_stack.create_user("busy-writer")
    stub = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    experiment_id, run_id = auth_stack.experiment_with_run(owner, "busy-experiment")

    def grant(level: str) -> None:
        auth_stack.grant_on_experiment(owner, experiment_id, "busy-writer", level)

    grant("EDIT")

    def log(step: int) -> None:
        request = trk.LogMetricRequest(run_id=run_id, key="m", value=1.0, step=step, timestamp=1)
        stub.LogMetric(request, metadata=writer, timeout=60)

    with _callers(log) as done:
        time.sleep(CACHE_SECONDS * 2)
        lowering = time.monotonic()
        grant("READ")
        lowered = time.monotonic()
        _run_past_the_bound(lowered)
    assert any(s < lowering and code is grpc.StatusCode.OK for s, code, _ in done)
    late = _started_after_the_bound(done, lowered)
    assert {code for code, _ in late} == {grpc.StatusCode.PERMISSION_DENIED}, late[:3]
    assert all(
        f"needs EDIT on experiment {experiment_id!r}" in details and "has READ" in details
        for _, details in late
    ), late[:3]
    # What the user sees afterwards: exactly the accepted calls' points, none of the refused.
    history = stub.GetMetricHistory(
        trk.GetMetricHistoryRequest(run_id=run_id, metric_key="m"), metadata=owner
    )
    accepted = sum(1 for _, code, _ in done if code is grpc.StatusCode.OK)
    assert len(history.metrics) == accepted
