"""A process that logs over a gateway and forks (``multiprocessing``'s default start method on
Linux, DataLoader workers): its children must neither crash nor fail their calls.

gRPC prepares for a fork only when no thread is inside it (else it logs "skipping fork()
handlers" and a child may crash, about 1 fork in 20 with a call pipeline open); the SDK ends its
pipeline streams and waits for gRPC's helper threads before a fork (mlgrid/_fork.py), and a child
opens channels of its own. The client runs in a process of its own: the test's process hosts the
servers, whose threads are always inside gRPC.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgrid.client import Client
from mlgrid.transport import Transport
from tests.fixtures.scripts import clean_environment, run_script
from tests.fixtures.stack import Stack, start_stack

_FORKING = """
import multiprocessing, os, sys
import mlgrid

mlgrid.set_tracking_uri(sys.argv[1])
ROUNDS, WORKERS = 10, 2

def work(step):
    mlgrid.log_metric("child", float(step), step=step)  # in the parent's run, inherited
    return os.getpid()

with mlgrid.start_run() as run:
    children = set()
    for round_ in range(ROUNDS):
        # The stream is open (and the tunnel just set up, in round 0) when the pool forks.
        mlgrid.log_metric("loss", 1.0 / (round_ + 1), step=round_)
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            steps = range(round_ * 4, round_ * 4 + 4)
            children |= set(pool.map_async(work, steps).get(timeout=30))
        pid = os.fork()  # a child that never calls gRPC
        if pid == 0:
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "a bare child crashed"
    mlgrid.log_metric("after", 1.0)
print(run.info.run_id, len(children), flush=True)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("fork"), services=["tracking"]) as running:
        yield running


@pytest.mark.parametrize("pipeline", ["true", "false"])
def test_forked_workers_log_into_the_parents_run_and_grpc_prepares_every_fork(
    stack: Stack, tmp_path: Path, pipeline: str
) -> None:
    script = tmp_path / "forking.py"
    script.write_text(_FORKING)
    done = subprocess.run(
        [sys.executable, str(script), stack.tracking_uri],
        capture_output=True,
        text=True,
        env=clean_environment(MLGRID_CALL_PIPELINE=pipeline),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipping fork() handlers" not in done.stderr, done.stderr[-3000:]
    run_id, workers = done.stdout.split()
    assert int(workers) >= 2  # each round's pool forked workers of its own
    transport = Transport(stack.tracking_uri)
    try:
        client = Client(transport=transport)
        assert sorted(m.step for m in client.get_metric_history(run_id, "child")) == list(range(40))
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(10))
        assert client.get_run(run_id).data.metrics["after"] == 1.0
    finally:
        transport.close()


_EMBEDDED_FORKING = """
import multiprocessing, os, sys
import mlgrid

STORE = sys.argv[1]
mlgrid.set_tracking_uri(STORE)

def work(step):
    mlgrid.log_metric("child", float(step), step=step)  # in the parent's run, inherited
    return os.getpid()

def sessions():
    # The PostgreSQL sessions of this database but the one asking (the parent's own).
    if not STORE.startswith("postgresql"):
        return set()
    import psycopg
    with psycopg.connect(STORE.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return {row[0] for row in rows}

with mlgrid.start_run() as run:
    mlgrid.log_metric("loss", 1.0, step=0)
    before = sessions()
    for round_ in range(3):
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map_async(work, range(round_ * 4, round_ * 4 + 4)).get(timeout=30)
        pid = os.fork()
        if pid == 0:  # a child that logs and exits as a script does (exit hooks, collection)
            mlgrid.log_metric("exiting", 1.0, step=round_)
            sys.exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "an exiting child failed"
    lost = before - sessions()
    mlgrid.log_metric("after", 1.0)
print(run.info.run_id, len(before), len(lost), flush=True)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def embedded_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'forks.db'}"
    return request.getfixturevalue("fresh_postgres_url")


def test_an_embedded_store_forks_children_that_log_and_the_parent_keeps_its_sessions(
    embedded_store: str, tmp_path: Path
) -> None:
    """In embedded mode the services run in the script: a child that wrote on the database
    connections it inherited would share its parent's sessions (it hung, on PostgreSQL)."""
    artifacts = (tmp_path / "artifacts").as_uri()
    stdout = run_script(
        tmp_path,
        "embedded_forking",
        _EMBEDDED_FORKING,
        embedded_store,
        MLGRID_DEFAULT_ARTIFACT_ROOT=artifacts,
    )
    run_id, sessions, lost = stdout.split()
    if embedded_store.startswith("postgresql"):
        assert int(sessions) >= 1
    assert lost == "0"  # no child ended a session of its parent's
    client = Client(transport=Transport(embedded_store))
    try:
        assert sorted(m.step for m in client.get_metric_history(run_id, "child")) == list(range(12))
        assert [m.step for m in client.get_metric_history(run_id, "exiting")] == [0, 1, 2]
        assert client.get_run(run_id).data.metrics["after"] == 1.0
    finally:
        client._transport.close()


_REGISTRY_FORKING = """
import os, sys, time
import mlgrid

mlgrid.set_tracking_uri(sys.argv[1])
mlgrid.set_registry_uri(sys.argv[1])
client = mlgrid.MlflowClient()
client.create_registered_model("forked")
run = client.create_run(client.create_experiment("forked"))
client.log_text(run.info.run_id, "flavors: {}", "model/MLmodel")
client.create_model_version(
    "forked", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, description="parent"
)
assert client.get_model_version("forked", "1").description == "parent"  # cached now
pid = os.fork()
if pid == 0:
    code = 3
    try:
        client.update_model_version("forked", "1", description="child")
        code = 0 if client.get_model_version("forked", "1").description == "child" else 2
    finally:
        os._exit(code)
child = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
deadline = time.monotonic() + 10  # the parent's cache learns of it from PostgreSQL's NOTIFY
while (seen := client.get_model_version("forked", "1").description) != "child":
    if time.monotonic() > deadline:
        break
    time.sleep(0.05)
print(child, seen, flush=True)
"""


def test_a_forked_child_writes_the_registry_and_its_parent_sees_it(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    """A child updates a model version its parent has cached: the child reads its own write
    (its cache is off: no thread of its own listens for changes) and the parent's cache, which
    follows PostgreSQL's notifications, lets the parent see it too."""
    stdout = run_script(
        tmp_path,
        "registry_forking",
        _REGISTRY_FORKING,
        fresh_postgres_url,
        MLGRID_DEFAULT_ARTIFACT_ROOT=(tmp_path / "artifacts").as_uri(),
    )
    assert stdout.split() == ["0", "child"]
