"""Errors a newcomer meets are one line naming what to change, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from fixtures.postgres import ADMIN_URL


def _mlgrid(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _missing_database_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/mlgrid_missing_{uuid.uuid4().hex[:8]}"


def test_a_missing_postgresql_database_is_one_line_from_the_cli(tmp_path: Path) -> None:
    url = _missing_database_url()
    done = _mlgrid("experiments", "search", cwd=tmp_path, MLGRID_TRACKING_URI=url)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "does not exist" in lines[0] and "createdb" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_a_missing_postgresql_database_is_one_line_from_a_server(tmp_path: Path) -> None:
    url = _missing_database_url()
    done = _mlgrid("server", "tracking", "--port", "0", "--backend-store-uri", url, cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "MLGRID_BACKEND_STORE_URI" in errors[0], done.stderr
