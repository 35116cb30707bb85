"""``mlgrid models …`` against a running stack, as a user types it."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from mlgrid.cli.main import cli
from mlgrid.client import Client


@pytest.fixture
def run_cli(grpc_stack):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, expect: int = 0) -> str:
        result = runner.invoke(cli, ["models", *args, "--tracking-uri", grpc_stack.tracking_uri])
        assert result.exit_code == expect, result.output
        return result.output

    return invoke


def test_models_lifecycle_from_the_command_line(run_cli, grpc_stack) -> None:  # type: ignore[no-untyped-def]
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert f"Created registered model {name!r}" in run_cli(
        "create", name, "-d", "churn model", "--tag", "team=growth"
    )
    client = Client(grpc_stack.tracking_uri)
    for i in (1, 2):
        client.create_model_version(name, f"s3://bucket/{name}/{i}")

    listed = run_cli("list", "--filter", f"name = '{name}'")
    header, rule, row = listed.splitlines()
    assert set(rule.replace(" ", "")) == {"-"}
    assert header.split() == ["NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"]
    assert row.split()[:2] == [name, "2"] and row.endswith("churn model")

    assert "now points at version 1" in run_cli("set-alias", name, "champion", "1")
    assert "is now in stage Production" in run_cli("transition", name, "2", "production")
    versions = run_cli("versions", name).splitlines()
    assert versions[0].split() == [
        "VERSION",
        "STAGE",
        "STATUS",
        "ALIASES",
        "RUN",
        "ID",
        "CREATED",
        "SOURCE",
    ]
    assert versions[2].split()[:3] == ["2", "Production", "READY"]
    assert versions[3].split()[:4] == ["1", "None", "READY", "champion"]

    as_json = json.loads(run_cli("versions", name, "-o", "json"))
    assert [(v["version"], v["aliases"]) for v in as_json] == [("2", []), ("1", ["champion"])]

    assert "Deleted version 1" in run_cli("delete", name, "--version", "1")
    assert "Deleted registered model" in run_cli("delete", name, "--yes")
    missing = run_cli("versions", name, expect=1)
    assert "RESOURCE_DOES_NOT_EXIST" in missing and name in missing


def test_cli_reports_bad_input_without_a_traceback(run_cli) -> None:  # type: ignore[no-untyped-def]
    name = f"cli-{uuid.uuid4().hex[:8]}"
    run_cli("create", name)
    output = run_cli("set-alias", name, "latest", "1", expect=1)
    assert "INVALID_PARAMETER_VALUE" in output and "reserved" in output
    assert "Traceback" not in output
