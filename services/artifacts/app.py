"""Builds the artifacts service for a process (``mlgrid server artifacts``, ``mlgrid up``, embedded)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import grpc

from mlgrid.api.artifacts.v1 import artifacts_service_pb2, artifacts_service_pb2_grpc
from mlgrid.environment import MLGRID_ARTIFACTS_ALLOWED_ROOTS, MLGRID_ARTIFACTS_SWEEP_INTERVAL
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.paths import check_uri
from mlgrid_services.common.server import ServedService

from .access_rules import artifacts_rules
from .domain import ArtifactsDomain
from .orphans import OrphanSweeper
from .repositories import ARTIFACT_REPOSITORIES
from .servicer import ArtifactsServicer

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Allocations below this come from the heap (message buffers, staging buffers).
_MMAP_THRESHOLD = 16 * 1024 * 1024
#: Free memory at the top of a heap kept for reuse rather than handed back to the kernel.
_TRIM_THRESHOLD = 16 * 1024 * 1024
#: Bytes a stream may have in flight towards the service. gRPC's default grows each stream's
#: receive window with the measured bandwidth (BDP probing), so uploads waiting for a transfer
#: slot kept tens of MiB each in the process: 16 concurrent 60 MiB uploads took it to +300 to
#: +880 MiB. A fixed window bounds that at this much per stream (+80 MiB, docs/hardening.md).
STREAM_WINDOW_BYTES = 1024 * 1024
BULK_SERVER_OPTIONS = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
]
SERVICE_NAME = artifacts_service_pb2.DESCRIPTOR.services_by_name["ArtifactsService"].full_name


def local_roots(config: ServiceConfig) -> list[Path]:
    """The local directories the service writes below (for the orphaned temp file sweeper)."""
    entries = [config.effective_artifact_root]
    entries += [e.strip() for e in (MLGRID_ARTIFACTS_ALLOWED_ROOTS.get() or "").split(",")]
    roots = []
    for entry in entries:
        if entry.startswith("file:") or entry.startswith("/"):
            try:
                roots.append(check_uri(entry, "allowed root").local_path())
            except InvalidParameterValue:
                continue
    return roots


def _keep_memory_flat() -> None:
    """Caps glibc's malloc arenas at two, and keeps freed buffers for reuse.

    Streams allocate and free ~1 MiB buffers from many gRPC threads; by default each thread
    gets a heap of its own that keeps the freed buffers, so RSS creeps up by tens of MiB per
    large transfer. Two shared arenas keep the peak flat, without the page-fault cost of
    handing every buffer back to the kernel (a low mmap threshold doubles the CPU per byte).

    The thresholds are fixed for the same reason: left dynamic, glibc trims a heap as soon as
    2 MiB sit free at its top, which with 1 MiB messages coming and going happens all the time,
    and every trimmed page faults again when the heap regrows (costly on virtual machines).
    Fixed, the service spends ~25% less CPU on a 200 MiB upload, download and a 500-file batch;
    a heap keeps at most 16 MiB free, so the peak RSS of a transfer does not grow (measured).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def create(config: ServiceConfig) -> ServiceApp:
    """The artifacts service, announcing every scheme with a repository (file, s3, plugins')."""
    if not (config.gateway_target or "").startswith("unix:"):
        # A process of its own (not embedded in a user's program, whose allocator we leave be).
        _keep_memory_flat()
    servicer = ArtifactsServicer(ArtifactsDomain(policy_for(config)))
    # Temp files of uploads a killed process left behind: removed now and on a timer.
    sweeper = OrphanSweeper(local_roots(config), MLGRID_ARTIFACTS_SWEEP_INTERVAL.get()).start()

    def register(server: grpc.Server) -> None:
        artifacts_service_pb2_grpc.add_ArtifactsServiceServicer_to_server(servicer, server)

    service = ServedService(
        name=SERVICE_NAME,
        register=register,
        schemes=ARTIFACT_REPOSITORIES.schemes(),
        server_options=BULK_SERVER_OPTIONS,
        rules=artifacts_rules(config.effective_artifact_root),
    )
    return ServiceApp(services=[service], close=sweeper.close)
