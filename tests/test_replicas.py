"""``mlgrid up --replicas 3`` on PostgreSQL: the gateway spreads calls over every replica, and
replicas killed one by one under load cost no idempotent call and lose or double no write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlgrid.client import Client
from tests.test_stack import UpProcess, start_up

HERE = Path(__file__).parent
REPLICAS = 3


def replicas_of(up: UpProcess, service: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(up.proc.pid).children():
        with_args = child.cmdline()
        if "server" in with_args and with_args[with_args.index("server") + 1] == service:
            found.append(child)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> list[float]:
    return [sum(p.cpu_times()[:2]) for p in processes]


@pytest.fixture
def replicated(tmp_path: Path, fresh_postgres_url: str) -> Iterator[UpProcess]:
    up = start_up(
        tmp_path,
        "--replicas",
        str(REPLICAS),
        "--no-rest",
        "--backend-store-uri",
        fresh_postgres_url,
    )
    try:
        yield up
    finally:
        up.proc.send_signal(signal.SIGTERM)
        try:
            up.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.proc.pid, signal.SIGKILL)
            up.proc.wait()


def test_up_starts_replicas_and_says_so(replicated: UpProcess) -> None:
    assert f"tracking x{REPLICAS}" in replicated.banner
    assert f"registry x{REPLICAS}" in replicated.banner
    assert f"artifacts x{REPLICAS}" in replicated.banner
    assert "projects x" not in replicated.banner  # projects stays one process
    for service in ("tracking", "registry", "artifacts"):
        assert len(replicas_of(replicated, service)) == REPLICAS
    assert len(replicas_of(replicated, "projects")) == 1


def test_gateway_port_spreads_calls_over_every_replica(
    replicated: UpProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_GATEWAY_TUNNELS", "false")  # every call through the gateway port
    trackers = replicas_of(replicated, "tracking")
    client = Client(replicated.endpoint)
    run_id = client.create_run(client.create_experiment("spread")).info.run_id
    before = cpu_seconds(trackers)
    for step in range(300):
        client.log_metric(run_id, "m", float(step), step=step)
        client.get_run(run_id)
    used = [after - was for after, was in zip(cpu_seconds(trackers), before, strict=True)]
    total = sum(used)
    assert total > 0
    shares = [u / total for u in used]
    # Round robin: each replica serves about a third; allow for the noise of a busy machine.
    assert min(shares) > 0.15, f"CPU shares of the tracking replicas: {shares}"
    assert len(client.get_metric_history(run_id, "m")) == 300


def _start_worker(uri: str, run_id: str, worker: str, stop_file: Path, tunnels: bool):
    env = dict(os.environ, MLGRID_GATEWAY_TUNNELS="true" if tunnels else "false")
    return subprocess.Popen(
        [sys.executable, str(HERE / "replica_load.py"), uri, run_id, worker, str(stop_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_replicas_killed_one_by_one_under_load(replicated: UpProcess, tmp_path: Path) -> None:
    client = Client(replicated.endpoint)
    experiment_id = client.create_experiment("kills")
    run_id = client.create_run(experiment_id).info.run_id
    stop_file = tmp_path / "stop"
    # Two workers through the gateway port, two through tunnels (pinned to one replica each
    # until it dies).
    workers = {
        name: _start_worker(replicated.endpoint, run_id, name, stop_file, tunnels=name[0] == "t")
        for name in ("g1", "g2", "t1", "t2")
    }
    trackers = replicas_of(replicated, "tracking")
    killed = []
    try:
        time.sleep(3)
        for victim in trackers:
            # One at a time, waiting for `mlgrid up` to bring the last one back first, so two
            # replicas always serve.
            victim.kill()
            killed.append(victim.pid)
            time.sleep(4)
        time.sleep(2)
    finally:
        stop_file.touch()
    results = {}
    for name, proc in workers.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"worker {name} failed:\n{err[-3000:]}"
        results[name] = json.loads(out.strip().splitlines()[-1])

    back = replicas_of(replicated, "tracking")
    assert len(back) == REPLICAS and not {p.pid for p in back} & set(killed)

    for name, result in results.items():
        failures = result["failures"]
        # Idempotent calls (log_metric, get_run) never fail: they were retried on another
        # replica.
        assert failures["log_metric"] == [], f"{name}: {failures['log_metric'][:3]}"
        assert failures["get_run"] == [], f"{name}: {failures['get_run'][:3]}"
        assert len(result["steps"]) > 10, f"{name} barely ran: {len(result['steps'])} steps"
        # Every acknowledged point is stored, and once.
        history = client.get_metric_history(run_id, f"w{name}")
        stored = [point.step for point in history]
        assert stored == sorted(result["steps"]), f"{name}: stored points differ from acked"

    # Runs: every acknowledged one exists; a create_run that failed may have committed (its
    # answer lost with the replica) but none is doubled: no more runs than calls made.
    runs = client.search_runs([experiment_id], max_results=1000)
    stored_runs = {r.info.run_id for r in runs if r.info.run_id != run_id}
    acked = {rid for result in results.values() for rid in result["runs"]}
    failed_creates = sum(len(result["failures"]["create_run"]) for result in results.values())
    assert acked <= stored_runs
    assert len(stored_runs) <= len(acked) + failed_creates


def test_registry_reads_see_writes_made_on_another_replica(
    replicated: UpProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each registry replica caches version reads; a write on one empties the others' caches
    (PostgreSQL NOTIFY) before the writer's answer reaches the client, so an alias moved through
    one replica is read back as moved through the next (round robin: always another one)."""
    monkeypatch.setenv("MLGRID_GATEWAY_TUNNELS", "false")
    client = Client(replicated.endpoint)
    run_id = client.create_run(client.create_experiment("aliases")).info.run_id
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run_id, str(model_dir), "model")
    client.create_registered_model("champion")
    for _ in range(3):
        client.create_model_version("champion", f"runs:/{run_id}/model", run_id=run_id)
    stale = []
    for i in range(150):
        version = str(i % 3 + 1)
        client.set_registered_model_alias("champion", "live", version)
        read = client.get_model_version_by_alias("champion", "live").version
        if str(read) != version:
            stale.append((i, version, read))
    assert stale == []
