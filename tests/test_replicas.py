"""``mlgrid up --replicas 3`` on PostgreSQL: the gateway spreads calls over every replica, and
replicas killed one by one under load cost no idempotent call and lose or double no write. The
projects replicas own their runs through leases in the database: a replica killed or stalled
has its runs taken over (local processes: stopped and marked FAILED), never lost or run twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import mlgrid.projects
from mlgrid.client import Client
from mlgrid_services.common.sql import normalize_db_uri
from tests.test_stack import UpProcess, start_up

HERE = Path(__file__).parent
REPLICAS = 3
#: Projects service lease period of these stacks (seconds): short, so takeovers come quickly.
LEASE_SECONDS = 3.0


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
def replicated(
    tmp_path: Path, fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UpProcess]:
    monkeypatch.setenv("MLGRID_PROJECTS_LEASE_SECONDS", str(LEASE_SECONDS))
    monkeypatch.setenv("MLGRID_PROJECTS_STATE_DIR", str(tmp_path / "projects-state"))
    # Runs as the service's user: the test's Python may sit where another user cannot reach.
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_USER", "")
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
    assert f"projects x{REPLICAS}" in replicated.banner
    for service in ("tracking", "registry", "artifacts", "projects"):
        assert len(replicas_of(replicated, service)) == REPLICAS


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


# -- projects replicas: runs owned through leases --------------------------------------------

LONG_RUN = """\
import os, time
with open({marks!r}, "a") as marks:
    marks.write(os.environ["MLFLOW_RUN_ID"] + " " + str(os.getpid()) + "\\n")
print("started", os.environ["MLFLOW_RUN_ID"], flush=True)
time.sleep(300)
"""


@dataclass
class Leases:
    """The lease table as a test reads it (straight from PostgreSQL)."""

    url: str

    def owners(self) -> dict[str, int]:
        """run id -> pid of the replica owning it."""
        engine = create_engine(normalize_db_uri(self.url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT run_id, owner_pid FROM mlgrid_project_leases"
                ).all()
        finally:
            engine.dispose()
        return {row.run_id: row.owner_pid for row in rows}


def _started(marks: Path, count: int, timeout: float = 120) -> dict[str, int]:
    """run id -> pid of its process, once ``count`` runs have started (each writes one line)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = marks.read_text().splitlines() if marks.exists() else []
        if len(lines) >= count:
            return {run_id: int(pid) for run_id, pid in (line.split() for line in lines)}
        assert time.monotonic() < deadline, f"only {len(lines)} of {count} runs started"
        time.sleep(0.2)


def _status_within(client: Client, run_id: str, wanted: str, timeout: float) -> float:
    """Seconds until the tracking run's status is ``wanted`` (fails after ``timeout``)."""
    started = time.monotonic()
    while (status := client.get_run(run_id).info.status) != wanted:
        assert time.monotonic() - started < timeout, f"run {run_id} still {status}"
        time.sleep(0.1)
    return time.monotonic() - started


def _gone(pid: int, timeout: float = 15) -> bool:
    """Whether ``pid`` exits within ``timeout`` (a zombie counts: its parent may be stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _submit(up: UpProcess, tmp_path: Path, count: int, monkeypatch: pytest.MonkeyPatch):
    """``count`` long runs of a local project submitted through the gateway port (round robin
    over the projects replicas); returns the SDK's handles and the marks file."""
    monkeypatch.setenv("MLGRID_GATEWAY_TUNNELS", "false")
    monkeypatch.setenv("MLGRID_TRACKING_URI", up.endpoint)
    marks = tmp_path / "marks"
    project = tmp_path / "project"
    project.mkdir()
    (project / "long.py").write_text(LONG_RUN.format(marks=str(marks)))
    submitted = [
        mlgrid.projects.run(str(project), "long.py", experiment_name="leases", synchronous=False)
        for _ in range(count)
    ]
    return submitted, marks


def test_a_killed_projects_replica_has_its_runs_failed_and_the_others_go_on(
    replicated: UpProcess,
    tmp_path: Path,
    fresh_postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    submitted, marks = _submit(replicated, tmp_path, 6, monkeypatch)
    pids = _started(marks, 6)
    leases = Leases(fresh_postgres_url)
    owners = leases.owners()
    replica_pids = {p.pid for p in replicas_of(replicated, "projects")}
    assert set(owners) == set(pids) and set(owners.values()) <= replica_pids
    assert len(set(owners.values())) >= 2, f"all runs on one replica: {owners}"
    # Each run's output, asked of whichever replica the gateway picks (mostly not the owner:
    # it relays the stream from the owner).
    for run in submitted * 2:
        output = b"".join(chunk.data for chunk in run.logs(follow=False))
        assert f"started {run.run_id}".encode() in output

    victim = owners[submitted[0].run_id]
    orphaned = {run_id for run_id, owner in owners.items() if owner == victim}
    os.kill(victim, signal.SIGKILL)  # no chance to mark its runs
    client = Client(replicated.endpoint)
    for run_id in orphaned:
        # Another replica (on this host: at its next heartbeat) takes the lease over; a local
        # process cannot be re-adopted, so it is stopped and the run marked FAILED, saying why.
        took = _status_within(client, run_id, "FAILED", LEASE_SECONDS + 15)
        print(f"run of the killed replica FAILED {took:.2f} s after the kill")
        tags = client.get_run(run_id).data.tags
        assert "could not take the run over" in tags["mlgrid.project.failure"]
        assert _gone(pids[run_id]), f"the process of orphaned run {run_id} still runs"

    # The other replicas' runs go on, owned as before; a cancel reaching any replica (round
    # robin: mostly not the owner) is passed to the owner through the lease.
    survivors = [s for s in submitted if s.run_id not in orphaned]
    assert {leases.owners()[s.run_id] for s in survivors} <= replica_pids - {victim}
    for run in survivors:
        assert client.get_run(run.run_id).info.status == "RUNNING"
        run.cancel()
        _status_within(client, run.run_id, "KILLED", 30)
        assert _gone(pids[run.run_id])

    # Every run ran exactly once, none is left RUNNING, and no lease is left behind.
    assert len(marks.read_text().splitlines()) == 6
    deadline = time.monotonic() + 30
    while leases.owners() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leases.owners() == {}
    statuses = {
        r.info.run_id: r.info.status
        for r in client.search_runs([client.get_experiment_by_name("leases").experiment_id])
    }
    assert sorted(statuses.values()) == sorted(
        ["FAILED"] * len(orphaned) + ["KILLED"] * len(survivors)
    )


def test_a_stalled_projects_replica_loses_its_runs_when_its_lease_expires(
    replicated: UpProcess,
    tmp_path: Path,
    fresh_postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (run,), marks = _submit(replicated, tmp_path, 1, monkeypatch)
    pid = _started(marks, 1)[run.run_id]
    leases = Leases(fresh_postgres_url)
    owner = leases.owners()[run.run_id]
    # Stopped, not dead: its process still exists, so only the lease's expiry lets another
    # replica take the run over (as for a replica on another host).
    os.kill(owner, signal.SIGSTOP)
    try:
        client = Client(replicated.endpoint)
        took = _status_within(client, run.run_id, "FAILED", LEASE_SECONDS + 20)
        print(f"run of the stalled replica FAILED {took:.2f} s after the stop")
        # The lease was renewed at most a quarter period before the stop.
        assert took >= LEASE_SECONDS * 0.75 - 0.5, f"taken over after {took:.1f}s"
        assert _gone(pid)
    finally:
        os.kill(owner, signal.SIGCONT)
    # Woken, the stalled replica finds its lease gone and leaves the run alone.
    time.sleep(LEASE_SECONDS)
    assert psutil.Process(owner).is_running()
    assert client.get_run(run.run_id).info.status == "FAILED"
    assert leases.owners() == {}
    assert len(marks.read_text().splitlines()) == 1
