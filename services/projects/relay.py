"""A run's log stream asked of a replica that does not run it: relayed from the one that does.

A local run's output lives in the memory of the replica that supervises it, and the gateway
spreads calls over every replica, so ``StreamRunLogs`` may reach another one. That replica finds
the owner's address in the run's lease and forwards the call there with the caller's own
metadata (its credentials: the owner checks them as if the call came straight to it), marked as
relayed so that it is never forwarded twice.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc

__all__ = ["RELAYED_METADATA", "is_relayed", "relay_logs"]

#: Metadata key a relaying replica adds.
RELAYED_METADATA = "mlgrid-projects-relayed"
#: Metadata gRPC sets per hop (never forwarded).
_HOP_KEYS = ("user-agent", "content-type", "te", "host")


def is_relayed(context: grpc.ServicerContext) -> bool:
    return any(key == RELAYED_METADATA for key, _ in context.invocation_metadata() or ())


def relay_logs(
    address: str, request: pb.StreamRunLogsRequest, context: grpc.ServicerContext
) -> Iterator[pb.StreamRunLogsResponse]:
    """The owner's answer to ``request``, chunk by chunk; its error, if any, as its own."""
    metadata = [
        (key, value)
        for key, value in context.invocation_metadata() or ()
        if key not in _HOP_KEYS and not key.startswith((":", "grpc-"))
    ]
    metadata.append((RELAYED_METADATA, "1"))
    with grpc.insecure_channel(address) as channel:
        call = pb_grpc.ProjectsServiceStub(channel).StreamRunLogs(request, metadata=tuple(metadata))
        context.add_callback(call.cancel)  # the caller went away: stop asking the owner
        try:
            yield from call
        except grpc.RpcError as exc:
            if not context.is_active():
                return
            code = exc.code()  # type: ignore[attr-defined]
            details = str(exc.details() or "")  # type: ignore[attr-defined]
            if code == grpc.StatusCode.UNAVAILABLE:
                details = (
                    f"the projects service replica running run {request.run_id} ({address}) "
                    f"cannot be reached: {details}"
                )
            context.abort(code, details)
