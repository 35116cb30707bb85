#!/usr/bin/env python3
"""Container health check for an mlgrid process: ``mlgrid-healthcheck [host:port] [service]``.

Asks the gRPC health service of the process at ``host:port`` (default 127.0.0.1:50051) and exits
0 when it answers SERVING, 1 otherwise, printing why. The image installs it as
/usr/local/bin/mlgrid-healthcheck for compose's ``healthcheck``; Kubernetes probes gRPC health
natively and does not need it.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, what the server said) for ``service`` ("" = the whole process)."""
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as err:
            return False, f"{target}: {err.code().name}: {err.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return answer.status == health_pb2.HealthCheckResponse.SERVING, f"{target}: {status}"


def main(argv: list[str]) -> int:
    if len(argv) > 2 or any(a.startswith("-") for a in argv):
        print("usage: mlgrid-healthcheck [host:port] [service]", file=sys.stderr)
        return 2
    target = argv[0] if argv else "127.0.0.1:50051"
    healthy, said = check(target, argv[1] if len(argv) > 1 else "")
    print(said)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
