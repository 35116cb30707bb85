"""``mlgrid experiments …`` and ``mlgrid runs …`` as a user sees them (click's CliRunner)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner, Result

from mlgrid import MlflowClient
from mlgrid.cli._tables import format_table
from mlgrid.cli.main import cli


def _mlgrid(uri: str, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _row(output: str, first_cell: str) -> list[str]:
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting with {first_cell!r} in:\n{output}")


def test_table_columns_are_aligned() -> None:
    text = format_table(["id", "name"], [["1", "short"], ["22", "a much longer name"]])
    lines = text.splitlines()
    assert lines[0] == "ID  NAME"
    assert lines[1] == "--  ------------------"
    assert lines[3] == "22  a much longer name"
    assert {line.index(line.split()[1]) for line in lines} == {4}
    assert format_table(["id"], [], empty="No runs.") == "No runs."


def test_experiment_commands(uri: str, unique_name: str) -> None:
    created = _mlgrid(uri, "experiments", "create", "-n", unique_name, "--tag", "team=vision")
    experiment_id = re.search(r"with id (\S+)", created.output).group(1)  # type: ignore[union-attr]

    listed = _mlgrid(uri, "experiments", "search")
    assert listed.output.splitlines()[0].split()[:3] == ["ID", "NAME", "LIFECYCLE"]
    assert _row(listed.output, experiment_id)[1:3] == [unique_name, "active"]

    described = _mlgrid(uri, "experiments", "describe", "--experiment-name", unique_name)
    assert f"Experiment {experiment_id}" in described.output
    assert re.search(r"team\s+vision", described.output)

    _mlgrid(uri, "experiments", "rename", "-x", experiment_id, "--new-name", unique_name + "-2")
    _mlgrid(uri, "experiments", "delete", "-x", experiment_id)
    deleted = _mlgrid(uri, "experiments", "search", "--view", "deleted_only", "-o", "json")
    names = {e["name"]: e["lifecycle_stage"] for e in json.loads(deleted.output)}
    assert names[unique_name + "-2"] == "deleted"
    _mlgrid(uri, "experiments", "restore", "-x", experiment_id)
    assert MlflowClient(uri).get_experiment(experiment_id).lifecycle_stage == "active"


def test_run_commands(uri: str, unique_name: str) -> None:
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(unique_name)
    created = _mlgrid(
        uri, "runs", "create", "-x", experiment_id, "--run-name", "cli-run", "--tag", "k=v"
    )
    run_id = re.search(r"Created run (\w+)", created.output).group(1)  # type: ignore[union-attr]
    client.log_param(run_id, "lr", "0.01")
    client.log_metric(run_id, "acc", 0.93, step=4)
    client.set_terminated(run_id)

    listed = _mlgrid(uri, "runs", "search", "-x", experiment_id)
    assert _row(listed.output, run_id)[1:4] == ["cli-run", experiment_id, "FINISHED"]
    assert _mlgrid(uri, "runs", "list", "-x", experiment_id).output == listed.output

    described = _mlgrid(uri, "runs", "describe", "--run-id", run_id)
    for pattern in (r"status:\s+FINISHED", r"lr\s+0\.01", r"acc\s+0\.93\s+4", r"k\s+v"):
        assert re.search(pattern, described.output), (pattern, described.output)
    as_json = json.loads(_mlgrid(uri, "runs", "describe", "-r", run_id, "-o", "json").output)
    assert as_json["data"]["metrics"] == {"acc": 0.93}

    _mlgrid(uri, "runs", "delete", "--run-id", run_id)
    assert "No runs." in _mlgrid(uri, "runs", "search", "-x", experiment_id).output
    _mlgrid(uri, "runs", "restore", "--run-id", run_id)
    assert run_id in _mlgrid(uri, "runs", "search", "-x", experiment_id).output


def test_errors_are_one_clear_line(uri: str) -> None:
    result = _mlgrid(uri, "runs", "describe", "--run-id", "f" * 32, ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: RESOURCE_DOES_NOT_EXIST")
    assert "Traceback" not in result.output


def test_malformed_tag_option_is_a_usage_error(uri: str) -> None:
    result = _mlgrid(uri, "experiments", "create", "-n", "x", "--tag", "novalue", ok=False)
    assert result.exit_code == 2
    assert "'novalue' is not KEY=VALUE" in result.output


@pytest.mark.parametrize("group", ["experiments", "runs"])
def test_tracking_uri_comes_from_the_environment(
    group: str, embedded_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", embedded_uri)
    result = CliRunner().invoke(cli, [group, "search"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(("ID", "RUN ID", "No runs."))
