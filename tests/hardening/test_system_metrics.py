"""start_run(log_system_metrics=True) logs the machine's usage as system/… metrics, with
MLflow's names, until the run ends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import mlgrid


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlgrid.db'}"
    monkeypatch.setenv("MLGRID_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.chdir(tmp_path)
    mlgrid.set_tracking_uri(uri)
    yield uri
    mlgrid.end_run()


def test_system_metrics_are_logged_until_the_run_ends(embedded: str) -> None:
    with mlgrid.start_run(log_system_metrics=True) as run:
        time.sleep(0.9)
    metrics = mlgrid.get_run(run.info.run_id).data.metrics
    for name in (
        "system/cpu_utilization_percentage",
        "system/system_memory_usage_megabytes",
        "system/system_memory_usage_percentage",
        "system/disk_usage_percentage",
        "system/network_receive_megabytes",
    ):
        assert name in metrics, sorted(metrics)
    assert 0 < metrics["system/system_memory_usage_percentage"] <= 100
    history = mlgrid.MlflowClient().get_metric_history(
        run.info.run_id, "system/cpu_utilization_percentage"
    )
    assert len(history) >= 3  # samples while running, and a last one at the end
    assert [m.step for m in history] == list(range(len(history)))
    count = len(history)
    time.sleep(0.5)  # nothing more once the run has ended
    after = mlgrid.MlflowClient().get_metric_history(
        run.info.run_id, "system/cpu_utilization_percentage"
    )
    assert len(after) == count
