"""One check of "already at the newest migration" for every service's schema
(services/common/sql.upgrade_database): the head it reads from the migration scripts is the one
Alembic would reach, and a database already there is opened without loading Alembic."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlgrid_services.common.auth import store as auth_store
from mlgrid_services.common.sql import head_revision, make_engine, upgrade_database
from mlgrid_services.projects.leases import store as lease_store
from mlgrid_services.registry import migrations as registry_migrations
from mlgrid_services.tracking import migrations as tracking_migrations

SCRIPT_LOCATIONS = {
    "tracking": tracking_migrations.SCRIPT_LOCATION,
    "registry": registry_migrations.SCRIPT_LOCATION,
    "auth": auth_store.MIGRATIONS,
    "projects": lease_store.MIGRATIONS,
}


def _alembic_head(script_location: Path) -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(script_location))
    return ScriptDirectory.from_config(config).get_current_head()


@pytest.mark.parametrize("service", sorted(SCRIPT_LOCATIONS))
def test_the_head_read_from_the_scripts_is_alembics(service: str) -> None:
    location = Path(SCRIPT_LOCATIONS[service])
    assert head_revision(location) is not None
    assert head_revision(location) == _alembic_head(location)


def test_a_new_migration_moves_the_head_and_is_run(tmp_path: Path) -> None:
    copied = tmp_path / "migrations"
    shutil.copytree(lease_store.MIGRATIONS, copied, ignore=shutil.ignore_patterns("__pycache__"))
    uri = f"sqlite:///{tmp_path / 'leases.db'}"
    upgrade_database(uri, copied, lease_store.VERSION_TABLE)
    old_head = head_revision(copied)
    (copied / "versions" / "p9999_extra.py").write_text(
        "from alembic import op\n"
        'revision = "p9999_extra"\n'
        f"down_revision = {old_head!r}\n"
        "branch_labels = None\ndepends_on = None\n\n"
        "def upgrade() -> None:\n"
        '    op.execute("CREATE TABLE extra_marker (id INTEGER)")\n'
    )
    assert head_revision(copied) == "p9999_extra" == _alembic_head(copied)
    upgrade_database(uri, copied, lease_store.VERSION_TABLE)
    engine = make_engine(uri)
    with engine.connect() as conn:
        version = conn.exec_driver_sql(f"SELECT version_num FROM {lease_store.VERSION_TABLE}")
        assert version.scalar() == "p9999_extra"
        assert conn.exec_driver_sql("SELECT count(*) FROM extra_marker").scalar() == 0
    engine.dispose()


def test_branched_scripts_are_left_to_alembic(tmp_path: Path) -> None:
    copied = tmp_path / "migrations"
    shutil.copytree(lease_store.MIGRATIONS, copied, ignore=shutil.ignore_patterns("__pycache__"))
    (copied / "versions" / "p9999_branch.py").write_text(
        'revision = "p9999_branch"\ndown_revision = "p0001_run_leases"\n'
    )
    assert head_revision(copied) is None


_REOPEN = """
import sys
from mlgrid_services.projects.leases import LeaseStore
from mlgrid_services.common.auth.store import AuthStore
LeaseStore(sys.argv[1], "sqlite:///tracking.db", 1.0).close()
AuthStore(sys.argv[1]).close()
print("alembic" in sys.modules)
"""


@pytest.mark.parametrize("server", ["sqlite", "postgres", "mysql"])
def test_lease_and_auth_stores_at_head_open_without_alembic(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if server == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = str(request.getfixturevalue(f"fresh_{server}_url"))
    opened = [
        subprocess.run(
            [sys.executable, "-c", _REOPEN, url], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert opened == ["True", "False"]
