"""SDK test fixtures: a clean client environment per test, and a tracking URI per mode.

``tracking_uri`` is parametrised: "embedded-sqlite" (a SQLite file in a tmp dir, served
in-process by the SDK itself), "remote-postgresql" (the session's ``grpc_stack_pg`` gateway, its
services on PostgreSQL) and "embedded-mysql" (the session's MySQL/MariaDB database, served
in-process). One embedded store per
session keeps the suite fast; tests use unique experiment names instead of fresh databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgrid import fluent, tracking_uri

#: Every variable the SDK reads, cleared before each test so the host environment cannot leak in.
_PREFIXES = ("MLGRID_", "MLFLOW_")


@pytest.fixture(autouse=True)
def clean_client_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No inherited MLGRID_*/MLFLOW_* variables, no URI set, no active run or experiment."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    tracking_uri.set_tracking_uri(None)
    tracking_uri.set_registry_uri(None)
    fluent.state.forget()
    yield
    while fluent.active_run() is not None:
        try:
            fluent.end_run()
        except Exception:
            break
    fluent.state.forget()
    tracking_uri.set_tracking_uri(None)
    tracking_uri.set_registry_uri(None)
    for name in list(os.environ):  # e.g. set_experiment() exports MLGRID_EXPERIMENT_ID
        if name.startswith(_PREFIXES):
            del os.environ[name]


@pytest.fixture(scope="session")
def embedded_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store the SDK serves in-process (one per test session)."""
    return f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'mlgrid.db'}"


#: Each mode pairs a way in with a database, so that every way in and every database is
#: covered without running each test on every pair: embedded on SQLite (what a user gets by
#: default), remote through the gateway on PostgreSQL (a deployment, with its PostgreSQL fast
#: paths) and embedded on MySQL/MariaDB.
MODES = ["embedded-sqlite", "remote-postgresql", "embedded-mysql"]


@pytest.fixture(params=MODES)
def tracking_uri_for_mode(request: pytest.FixtureRequest, embedded_uri: str) -> str:
    if request.param == "remote-postgresql":
        stack = request.getfixturevalue("grpc_stack_pg")
        return str(stack.tracking_uri)
    if request.param == "embedded-mysql":  # the SDK serving a MySQL/MariaDB store itself
        return str(request.getfixturevalue("embedded_mysql_url"))
    return embedded_uri


@pytest.fixture(scope="session")
def embedded_mysql_url(mysql_url: str) -> Iterator[str]:
    """The session's MySQL database, whose embedded services stop before it is dropped (else the
    projects service's heartbeat meets a dropped table until the worker exits)."""
    yield mysql_url
    from mlgrid.transport import close_all

    close_all()


@pytest.fixture
def uri(tracking_uri_for_mode: str) -> str:
    """The tracking URI of this test's mode, also set as the process's tracking URI."""
    tracking_uri.set_tracking_uri(tracking_uri_for_mode)
    return tracking_uri_for_mode


@pytest.fixture
def unique_name() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sdk_env(tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses: this checkout importable, no MLGRID/MLFLOW settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    return env
