"""``start_run(log_system_metrics=True)``: CPU, memory, disk, network and (where present) GPU
usage logged to the run as ``system/…`` metrics, with MLflow's names, every few seconds.

A background thread samples with psutil (``pip install psutil``; without it the call is refused
saying so) and NVIDIA GPUs through pynvml when it is installed and finds one. Every sample is one
``log_batch``; the step counts samples. Sampling stops when the run ends (``end_run``), after
one last sample. ``MLGRID_SYSTEM_METRICS_SAMPLING_INTERVAL`` (MLflow's
``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``) sets the seconds between samples.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from mlgrid.entities import Metric
from mlgrid.environment import MLGRID_SYSTEM_METRICS_SAMPLING_INTERVAL
from mlgrid.exceptions import InvalidParameterValue

log = logging.getLogger(__name__)

MiB = 1024 * 1024


def require_psutil() -> None:
    """Raises the clear refusal when psutil is missing (before a run is created)."""
    _psutil()


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        raise InvalidParameterValue(
            "log_system_metrics=True needs the psutil package: pip install psutil "
            "(or start the run without log_system_metrics)"
        ) from None
    return psutil


def _gpu_samples() -> dict[str, float]:
    """Per-GPU utilisation and memory through pynvml, when installed and a GPU is present."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
    except Exception:
        return {}
    values: dict[str, float] = {}
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            values[f"system/gpu_{index}_utilization_percentage"] = float(rates.gpu)
            values[f"system/gpu_{index}_memory_usage_megabytes"] = memory.used / MiB
            values[f"system/gpu_{index}_memory_usage_percentage"] = (
                100.0 * memory.used / memory.total if memory.total else 0.0
            )
    except Exception:
        log.debug("reading GPU metrics failed", exc_info=True)
    return values


class SystemMetricsMonitor:
    """Samples the machine every ``interval`` seconds and logs to ``run_id`` through ``client``."""

    def __init__(self, client: Any, run_id: str, interval: float | None = None) -> None:
        self._psutil = _psutil()
        self.client = client
        self.run_id = run_id
        self.interval = interval or MLGRID_SYSTEM_METRICS_SAMPLING_INTERVAL.get()
        self.step = 0
        self._stop = threading.Event()
        self._network = self._psutil.net_io_counters()
        self._psutil.cpu_percent(interval=None)  # primes the CPU counter
        self._thread = threading.Thread(target=self._run, name="system-metrics", daemon=True)

    def sample(self) -> dict[str, float]:
        """One sample of every metric, by MLflow's names."""
        ps = self._psutil
        memory = ps.virtual_memory()
        disk = ps.disk_usage("/")
        network = ps.net_io_counters()
        values = {
            "system/cpu_utilization_percentage": float(ps.cpu_percent(interval=None)),
            "system/system_memory_usage_megabytes": (memory.total - memory.available) / MiB,
            "system/system_memory_usage_percentage": float(memory.percent),
            "system/disk_usage_percentage": float(disk.percent),
            "system/disk_usage_megabytes": disk.used / MiB,
            "system/disk_available_megabytes": disk.free / MiB,
            "system/network_receive_megabytes": (network.bytes_recv - self._network.bytes_recv)
            / MiB,
            "system/network_transmit_megabytes": (network.bytes_sent - self._network.bytes_sent)
            / MiB,
        }
        values.update(_gpu_samples())
        return values

    def log_sample(self) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, self.step) for k, v in self.sample().items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        self.step += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.log_sample()
            except Exception:  # a failed sample must never fail the user's training
                log.warning("logging system metrics failed", exc_info=True)

    def start(self) -> SystemMetricsMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops sampling after one last sample."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        try:
            self.log_sample()
        except Exception:
            log.warning("logging the last system metrics failed", exc_info=True)
