"""``mlgrid artifacts log | list | download`` against a real stack, through click's CliRunner."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlgrid.cli.main import cli
from mlgrid.client import Client

from .conftest import make_file, sha256_of, tree_of

MiB = 1024 * 1024


@pytest.fixture
def run_id(grpc_stack) -> str:
    client = Client(grpc_stack.tracking_uri)
    experiment_id = client.create_experiment(f"cli-{uuid.uuid4().hex[:8]}")
    return client.create_run(experiment_id).info.run_id


def _invoke(grpc_stack, *args: str):
    runner = CliRunner()
    return runner.invoke(cli, ["artifacts", *args, "--tracking-uri", grpc_stack.tracking_uri])


def test_log_list_and_download_a_tree(grpc_stack, run_id: str, tmp_path: Path) -> None:
    tree = tmp_path / "model"
    make_file(tree / "MLmodel", 100)
    make_file(tree / "data" / "w.bin", 5000, 1)
    logged = _invoke(grpc_stack, "log", str(tree), "--run-id", run_id, "--artifact-path", "m")
    assert logged.exit_code == 0, logged.output
    listed = _invoke(grpc_stack, "list", "--run-id", run_id, "--artifact-path", "m")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["PATH", "SIZE"]
    assert [line.split() for line in lines[2:]] == [["m/MLmodel", "100"], ["m/data/"]]
    as_json = _invoke(grpc_stack, "list", "--run-id", run_id, "-a", "m/data", "-o", "json")
    assert json.loads(as_json.stdout) == [
        {"path": "m/data/w.bin", "is_dir": False, "file_size": 5000}
    ]
    dst = tmp_path / "dl"
    downloaded = _invoke(
        grpc_stack, "download", "--run-id", run_id, "--artifact-path", "m", "--dst-path", str(dst)
    )
    assert downloaded.exit_code == 0, downloaded.output
    assert downloaded.stdout.strip() == str(dst / "m")
    assert tree_of(dst / "m") == tree_of(tree)


def test_large_transfers_show_a_progress_bar_on_stderr(
    grpc_stack, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, 9 * MiB)
    logged = _invoke(grpc_stack, "log", str(source), "--run-id", run_id)
    assert logged.exit_code == 0, logged.output
    assert "uploading big.bin" in logged.stderr
    assert "100%" in logged.stderr
    assert "MiB" not in logged.stdout
    downloaded = _invoke(
        grpc_stack, "download", "-r", run_id, "-a", "big.bin", "-d", str(tmp_path / "dl")
    )
    assert downloaded.exit_code == 0, downloaded.output
    assert "downloading" in downloaded.stderr and "100%" in downloaded.stderr
    assert sha256_of(Path(downloaded.stdout.strip())) == expected


def test_runs_uris_work_as_artifact_uri(grpc_stack, run_id: str, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    assert _invoke(grpc_stack, "log", str(source), "-u", f"runs:/{run_id}/docs").exit_code == 0
    listed = _invoke(grpc_stack, "list", "-u", f"runs:/{run_id}/docs", "-o", "json")
    assert json.loads(listed.stdout) == [{"path": "notes.txt", "is_dir": False, "file_size": 5}]
    dst = tmp_path / "dl"
    fetched = _invoke(grpc_stack, "download", "-u", f"runs:/{run_id}/docs", "-d", str(dst))
    assert fetched.exit_code == 0, fetched.output
    assert fetched.stdout.strip() == str(dst / "docs")
    assert (dst / "docs" / "notes.txt").read_text() == "hello"


def test_errors_are_one_line_messages(grpc_stack, run_id: str, tmp_path: Path) -> None:
    source = tmp_path / "x.txt"
    source.write_text("x")
    bad = _invoke(grpc_stack, "log", str(source), "--run-id", run_id, "-a", "../up")
    assert bad.exit_code == 1
    assert "INVALID_PARAMETER_VALUE" in bad.stderr and "'../up/x.txt'" in bad.stderr
    neither = _invoke(grpc_stack, "list")
    assert neither.exit_code == 2
    assert "exactly one of --run-id or --artifact-uri" in neither.stderr
