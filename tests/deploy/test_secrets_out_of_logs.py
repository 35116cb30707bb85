"""Credentials stay out of what an operator's tools print: `mlgrid db upgrade` (the chart's
migrate init container, whose output `kubectl logs` shows) names the store without its password."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import quote

import pytest

from mlgrid.uris import redact_credentials

#: A password with every character that breaks a URI unless encoded.
PASSWORD = "s3cr@t:/?#pw%"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            f"postgresql://ml:{quote(PASSWORD, safe='')}@db:5432/ml",
            "postgresql://ml:***@db:5432/ml",
        ),
        # Not encoded (malformed), still not leaked.
        ("postgresql+psycopg://ml:p@ss/w@db/ml", "postgresql+psycopg://ml:***@db/ml"),
        (
            "mysql+pymysql://db/ml?user=ml&password=pw&ssl=1",
            "mysql+pymysql://db/ml?user=ml&password=***&ssl=1",
        ),
        ("postgresql://ml@db/ml", "postgresql://ml@db/ml"),
        ("sqlite:////var/lib/mlgrid/ml.db", "sqlite:////var/lib/mlgrid/ml.db"),
        ("s3://bucket/run@1/model", "s3://bucket/run@1/model"),
    ],
)
def test_redacted_uris_keep_where_but_not_the_secret(uri: str, shown: str) -> None:
    assert redact_credentials(uri) == shown


def test_db_upgrade_does_not_print_the_password(fresh_postgres_url: str) -> None:
    # The test server trusts local connections, so any password is accepted: the URI is real.
    with_password = fresh_postgres_url.replace(
        "postgres@", f"postgres:{quote(PASSWORD, safe='')}@", 1
    )
    assert with_password != fresh_postgres_url
    done = subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "db", "upgrade"],
        env={"MLGRID_BACKEND_STORE_URI": with_password, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "tracking schema of postgresql+psycopg://postgres:***@127.0.0.1" in output
    assert "registry schema of" in output
    for leaked in (PASSWORD, quote(PASSWORD, safe=""), "s3cr"):
        assert leaked not in output
