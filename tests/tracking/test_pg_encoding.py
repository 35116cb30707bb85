"""A PostgreSQL database created with encoding SQL_ASCII (psycopg returns its text as bytes) is
refused when a service starts, with one line naming the database and the encoding it needs,
and nothing is written into it."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.common.auth.store import AuthStore
from mlgrid_services.projects.leases import LeaseStore
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore


def _tables(url: str) -> list[str]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return [row[0] for row in rows]


def test_a_service_refuses_a_sql_ascii_database_in_one_line(sql_ascii_postgres_url: str) -> None:
    database = sql_ascii_postgres_url.rsplit("/", 1)[1]
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlgrid.cli.main",
            "server",
            "tracking",
            "--port",
            "0",
            "--backend-store-uri",
            sql_ascii_postgres_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    last = started.stderr.strip().splitlines()[-1]
    assert f"the PostgreSQL database '{database}'" in last
    assert "has encoding SQL_ASCII; mlgrid needs UTF8" in last
    assert _tables(sql_ascii_postgres_url) == []


@pytest.mark.parametrize("store", ["tracking", "registry", "auth", "leases"])
def test_every_store_refuses_it(store: str, sql_ascii_postgres_url: str) -> None:
    opening = {
        "tracking": lambda url: SqlTrackingStore(url, "file:///tmp/unused"),
        "registry": SqlRegistryStore,
        "auth": AuthStore,
        "leases": lambda url: LeaseStore(url, "sqlite:///tracking.db", 30.0),
    }[store]
    with pytest.raises(InvalidParameterValue, match="has encoding SQL_ASCII; mlgrid needs UTF8"):
        opening(sql_ascii_postgres_url)
    assert _tables(sql_ascii_postgres_url) == []
