"""Where a projects service keeps its run leases: one database per tracking store, so two
SQLite-backed stacks on one machine never share (or take over) each other's leases, and a
test's service never writes into the user's home."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgrid.projects.backend import OwnedHandle
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.projects.app import create_runner, default_state_dir, lease_store_uri
from mlgrid_services.projects.leases import LeaseStore


def _config(store_uri: str) -> ServiceConfig:
    # The gateway is not dialled until a run needs tracking.
    return ServiceConfig(backend_store_uri=store_uri, gateway_target="127.0.0.1:9")


def test_the_suite_keeps_projects_state_out_of_the_home_directory() -> None:
    assert not default_state_dir().is_relative_to(Path.home() / ".mlgrid")


def test_a_sqlite_stack_keeps_its_leases_beside_its_tracking_file(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = lease_store_uri(_config(f"sqlite:///{tmp_path / 'one' / 'mlruns.db'}"))
    two = lease_store_uri(_config(f"sqlite:///{tmp_path / 'two' / 'mlruns.db'}"))
    assert one == f"sqlite:///{tmp_path / 'one' / 'mlruns.db-projects-leases.db'}"
    assert two == f"sqlite:///{tmp_path / 'two' / 'mlruns.db-projects-leases.db'}"


def test_other_stores_get_a_lease_file_of_their_own_in_the_state_directory(
    tmp_path: Path,
) -> None:
    memory = lease_store_uri(_config("sqlite://"))
    elsewhere = lease_store_uri(_config("sqlite:////no/such/dir/mlruns.db"))
    plugin = lease_store_uri(_config("my-plugin://bucket/store"))
    assert len({memory, elsewhere, plugin}) == 3
    for uri in (memory, elsewhere, plugin):
        path = Path(uri.removeprefix("sqlite:///"))
        assert path.parent == default_state_dir().absolute() and path.name.startswith("leases-")
    assert lease_store_uri(_config("my-plugin://bucket/store")) == plugin  # stable
    assert lease_store_uri(_config("sqlite://"), tmp_path) == f"sqlite:///{tmp_path / 'leases.db'}"


def test_a_server_tracking_store_holds_the_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lease_store_uri(_config("postgresql://u@db/x")) == "postgresql://u@db/x"
    monkeypatch.setenv("MLGRID_PROJECTS_STORE_URI", "mysql://u@leases/y")
    assert lease_store_uri(_config("postgresql://u@db/x")) == "mysql://u@leases/y"


def test_leases_of_the_shared_file_move_to_the_stacks_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases recorded in the one ~/.mlgrid/projects/leases.db that earlier versions shared are
    taken along at the next start (a run in flight is still reconciled), and only this
    stack's: another stack's stay for that stack to take."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("MLGRID_PROJECTS_STATE_DIR", str(state))
    mine = f"sqlite:///{tmp_path / 'mlruns.db'}"
    theirs = f"sqlite:///{tmp_path / 'other.db'}"
    shared = f"sqlite:///{state / 'leases.db'}"
    for store_uri, run_id in ((mine, "a" * 32), (theirs, "b" * 32)):
        old = LeaseStore(shared, store_uri, 30.0)
        old.record(OwnedHandle(run_id, "docker", {"container": run_id[:4]}))
        old.close()

    runner = create_runner(_config(mine))
    try:
        lease = runner.state.lease_of("a" * 32)
        assert lease is not None and lease.details == {"container": "aaaa"}
        assert runner.state.engine.url.database == str(tmp_path / "mlruns.db-projects-leases.db")
    finally:
        runner.close()
    left = LeaseStore(shared, theirs, 30.0)
    try:
        assert left.lease_of("a" * 32) is None
        assert left.lease_of("b" * 32) is not None
    finally:
        left.close()
