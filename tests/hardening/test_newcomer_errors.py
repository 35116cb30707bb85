"""Errors a newcomer meets are one line naming what to change, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

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


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr (no gRPC log lines, no traceback), which is an error."""
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


_S3_SETTINGS = ("MLGRID_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


def _timed_list(uri: str, cwd: Path, env: dict[str, str]) -> tuple[float, Any]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "artifacts", "list", "-u", uri],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return time.monotonic() - started, done


def test_s3_with_no_endpoint_configured_says_which_setting_at_once(tmp_path: Path) -> None:
    # A region whose AWS host name does not resolve anywhere, so the answer is the same with
    # or without a network to AWS.
    env = {**_without(*_S3_SETTINGS), "AWS_DEFAULT_REGION": "mlgrid-nowhere-1"}
    elapsed, done = _timed_list("s3://bucket/x", tmp_path, env)
    line = _one_line(done)
    assert "MLGRID_S3_ENDPOINT_URL" in line and "AWS" in line, line
    assert "MaxRetryError" not in line and "INTERNAL" not in line
    # Was 7 s of retries, then INTERNAL. The same command on a local directory is the
    # baseline (the CLI's and the embedded stack's start, slow on a busy machine).
    (tmp_path / "art").mkdir()
    baseline, _ = _timed_list((tmp_path / "art").as_uri(), tmp_path, env)
    assert elapsed - baseline < 5, (elapsed, baseline)


def test_an_s3_endpoint_that_cannot_be_reached_is_named(tmp_path: Path) -> None:
    done = _mlgrid(
        "artifacts",
        "list",
        "-u",
        "s3://bucket/x",
        cwd=tmp_path,
        MLGRID_S3_ENDPOINT_URL="http://127.0.0.1:9",
    )
    line = _one_line(done)
    assert "'http://127.0.0.1:9' (MLGRID_S3_ENDPOINT_URL) cannot be reached" in line, line


def test_an_unknown_artifact_scheme_is_one_line_without_grpc_noise(tmp_path: Path) -> None:
    done = _mlgrid("artifacts", "list", "-u", "gs://bucket/x", cwd=tmp_path)
    line = _one_line(done)
    # The built-in schemes are named (an installed plugin adds its own to the list).
    assert "'gs'" in line and "known schemes: " in line, line
    known = line.split("known schemes: ", 1)[1].split(", ")
    assert {"file", "s3"} <= set(known), line


def test_load_model_of_an_unknown_scheme_raises_without_grpc_noise(tmp_path: Path) -> None:
    script = (
        "import mlgrid.pyfunc\n"
        "try:\n"
        "    mlgrid.pyfunc.load_model('foo://bar')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stderr == ""  # nothing logged by gRPC (or anything else)
    assert done.stdout.startswith("InvalidParameterValue") and "'foo'" in done.stdout


def test_an_unknown_tracking_scheme_names_the_accepted_ones(tmp_path: Path) -> None:
    done = _mlgrid("experiments", "search", cwd=tmp_path, MLGRID_TRACKING_URI="foo://bar")
    line = _one_line(done)
    for accepted in ("grpc://host:port", "grpcs://", "mlgrid://", "sqlite:///", "postgresql://"):
        assert accepted in line, line
    assert "mlgrid.tracking_store" in line  # where a plugin for 'foo' would come from


def test_a_sqlite_path_in_a_missing_directory_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "dir"
    done = _mlgrid(
        "experiments", "search", cwd=tmp_path, MLGRID_TRACKING_URI=f"sqlite:///{missing}/x.db"
    )
    line = _one_line(done)
    assert f"directory '{missing}' does not exist" in line, line
    assert not (tmp_path / "typo").exists()  # nothing made on the way
