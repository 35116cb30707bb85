"""The CPU a piece of work costs this process and the one process that serves it.

Both floors under the cpu phase (grpc_floor.py, db_floor.py) time a loop of round trips between
this process and one other (a bare gRPC server, a PostgreSQL backend) the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class PairedCpu:
    """Seconds of CPU (user + system) of each side, and of wall-clock time."""

    here: float
    there: float
    wall: float


def paired_cpu(there: psutil.Process, work: Callable[[], None]) -> PairedCpu:
    """Runs ``work`` and returns what it cost this process and ``there``. (Linux counts
    another process's CPU in 10 ms ticks: the work must last well beyond that.)"""
    there_before, here_before = sum(there.cpu_times()[:2]), time.process_time()
    start = time.perf_counter()
    work()
    wall = time.perf_counter() - start
    here = time.process_time() - here_before
    return PairedCpu(here, sum(there.cpu_times()[:2]) - there_before, wall)
