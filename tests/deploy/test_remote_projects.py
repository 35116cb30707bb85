"""`mlgrid run ./dir` against a stack that cannot read this machine's directories (a cluster,
compose): refused with a message that says how to run the project instead, not the service's
talk of "paths on the server"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlgrid import tracking_uri
from mlgrid.cli.main import cli


@pytest.fixture
def deployed_stack(grpc_stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session stack with a deployment's project policy (no server-local paths)."""
    monkeypatch.delenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", raising=False)
    previous = tracking_uri.get_tracking_uri() if tracking_uri.is_tracking_uri_set() else None
    tracking_uri.set_tracking_uri(grpc_stack.tracking_uri)
    try:
        yield grpc_stack.tracking_uri
    finally:
        tracking_uri.set_tracking_uri(previous)


def test_a_local_directory_is_refused_with_how_to_run_it(
    deployed_stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "MLproject").write_text("name: p\nentry_points:\n  main:\n    command: echo hi\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "./my-project"])
    assert result.exit_code == 2, result.output
    assert "./my-project is a directory on this machine" in result.output
    assert f"projects service of {deployed_stack} runs elsewhere" in result.output
    assert "mlgrid run https://host/repo.git" in result.output and "mlgrid up" in result.output
    assert "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS" not in result.output


def test_a_path_that_is_not_a_local_directory_keeps_the_services_message(
    deployed_stack: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "absent")])
    assert result.exit_code == 2, result.output
    assert "names a path on the server" in result.output
