"""A long-lived service migrates a fresh PostgreSQL database in a child process: the schema is
at the newest revision afterwards, Alembic never enters the service's own process, and a
migration that fails is one error naming the schema (process_role.py, migrate_child.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_SERVICE = textwrap.dedent(
    """
    import json, sys
    from mlgrid_services.common import process_role
    from mlgrid_services.common.sql import make_engine
    from mlgrid_services.tracking import migrations

    process_role.long_lived_service = True
    uri, revision = sys.argv[1], sys.argv[2]
    outcome = {}
    try:
        migrations.upgrade(uri, revision)
    except Exception as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    outcome["alembic_loaded"] = "alembic" in sys.modules
    engine = make_engine(uri)
    with engine.connect() as conn:
        outcome["tables"] = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'metrics'"
        ).scalar()
    engine.dispose()
    print(json.dumps(outcome))
    """
)


def _service(uri: str, revision: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _SERVICE, uri, revision],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_fresh_database_is_migrated_outside_the_service(fresh_postgres_url: str) -> None:
    from mlgrid_services.common import schema_snapshot
    from mlgrid_services.common.sql import make_engine
    from mlgrid_services.tracking import migrations

    outcome = _service(fresh_postgres_url, "head")
    assert outcome == {"alembic_loaded": False, "tables": 1}
    engine = make_engine(fresh_postgres_url)
    try:
        head = schema_snapshot.read(migrations.SCRIPT_LOCATION)
        assert head is not None and migrations.revision_of(engine) == head.revision
    finally:
        engine.dispose()


def test_a_failed_migration_is_one_error_naming_the_schema(fresh_postgres_url: str) -> None:
    outcome = _service(fresh_postgres_url, "no-such-revision")
    assert outcome["error"] == (
        "RuntimeError: migrating the database schema (alembic_version_tracking) failed: "
        "CommandError: Can't locate revision identified by 'no-such-revision'"
    )
    assert outcome["alembic_loaded"] is False and outcome["tables"] == 0
