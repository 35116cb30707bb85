"""The benchmark's mlgrid side, scaled down, against a real ``mlgrid up`` on PostgreSQL: with
mlgrid's SDK, and with the unmodified ``mlflow`` client through the plugin and the REST port.

MLflow's server needs its own venv (created by the first ``make bench``), so it is not run here;
the workload code its client would run is the same module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import cli, cpu, report  # noqa: E402
from bench.phases import BY_ID, PHASES  # noqa: E402


def _run_quick(
    module: str, output: Path, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python -m <module> --quick <args> --output <output>`` from the repository root, as a
    user runs it: what it printed, and the results file it wrote (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args, "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(output.read_text())


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_quick_bench_measures_every_phase_of_mlgrid(tmp_path: Path, postgres_url: str) -> None:
    # postgres_url: the session's PostgreSQL must be up; the bench makes its own fresh database.
    done, saved = _run_quick("bench", tmp_path / "results.json", "--targets", "mlgrid", timeout=220)
    results = saved["results"]["mlgrid"]
    figures = {phase.id: results.get(phase.id, {}).get("value") for phase in PHASES}
    failed = {pid: results.get(pid) for pid, value in figures.items() if not value or value <= 0}
    assert not failed, f"phases without a positive figure: {failed}"
    # The printed table names every phase and the mlgrid column.
    for phase in PHASES:
        assert phase.title in done.stdout
    # Sizes come from the quick scale: the search returned the page it asked for.
    assert results["search_runs"]["detail"]["returned"] > 0
    assert results["metric_history"]["detail"]["points"] == 5_000


@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_quick_bench_measures_the_mlflow_client_through_the_plugin_and_rest(
    tmp_path: Path, postgres_url: str
) -> None:
    # The unmodified mlflow client (the dev extra's, in this venv) on `mlgrid up`: every phase a
    # client measures, through mlgrid:// and through the REST port.
    done, saved = _run_quick(
        "bench", tmp_path / "results.json", "--targets", "mlgrid-plugin,mlgrid-rest", timeout=340
    )
    client_phases = [p for p in PHASES if p.client_measured and not p.mlgrid_only]
    for target in ("mlgrid-plugin", "mlgrid-rest"):
        results = saved["results"][target]
        failed = {
            p.id: results.get(p.id) for p in client_phases if not results.get(p.id, {}).get("value")
        }
        assert not failed, f"{target}: phases without a figure: {failed}"
        assert saved["meta"]["versions"][target] == mlflow.__version__
    assert saved["meta"]["commands"]["mlgrid-rest"].split()[1] == "up"
    # The client table: both columns, every client phase, without MLflow's server no ratios.
    assert "The unmodified mlflow client on each server" in done.stdout
    assert "mlflow → mlgrid plugin" in done.stdout and "mlflow → mlgrid REST" in done.stdout
    for phase in client_phases:
        assert phase.title in done.stdout


def test_mlflow_client_targets_name_every_target_the_mlflow_client_drives() -> None:
    args = cli.parse_args(["--targets", "mlflow-client"])
    assert args.targets == ["mlflow", "mlflow-nodelay", "mlgrid-plugin", "mlgrid-rest"]
    args = cli.parse_args(["--targets", "mlgrid-rest,mlgrid"])
    assert args.targets == ["mlgrid", "mlgrid-rest"]  # run order, not the order given


def test_client_table_reports_ratios_to_mlflow_and_the_issue_targets() -> None:
    # Figures as a results file holds them: plugin 6x and REST 1.5x better on log_metric.
    results = {
        "mlflow-nodelay": {"log_metric": {"value": 12.0}, "create_versions": {"value": 50.0}},
        "mlgrid-plugin": {"log_metric": {"value": 2.0}, "create_versions": {"value": 500.0}},
        "mlgrid-rest": {"log_metric": {"value": 8.0}, "create_versions": {"value": 100.0}},
    }
    targets = ["mlflow-nodelay", "mlgrid-plugin", "mlgrid-rest"]
    table = report.client_rows(list(PHASES), results, targets)
    header = table[0]
    assert header[2:5] == ["MLflow (TCP_NODELAY)", "mlflow → mlgrid plugin", "mlflow → mlgrid REST"]
    by_phase = {row[0]: dict(zip(header, row, strict=True)) for row in table[1:]}
    log_metric = by_phase[BY_ID["log_metric"].title]
    assert log_metric["mlflow → mlgrid plugin vs MLflow (TCP_NODELAY)"] == "6.0x"
    assert log_metric["mlflow → mlgrid REST vs MLflow (TCP_NODELAY)"] == "1.5x"
    assert log_metric["target"] == "≥ 5x, ≥ 2x"
    assert (log_metric["met? (plugin)"], log_metric["met? (rest)"]) == ("yes", "no")
    # Registry phases get ratios, but the issue's targets are for tracking phases.
    versions = by_phase[BY_ID["create_versions"].title]
    assert versions["mlflow → mlgrid plugin vs MLflow (TCP_NODELAY)"] == "10.0x"
    assert versions["target"] == "" and versions["met? (plugin)"] == ""
    # Server-side figures (startup) are the main table's, not the client table's.
    assert BY_ID["startup_seconds"].title not in by_phase


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_quick_bench_sets_auth_on_beside_auth_off(tmp_path: Path, postgres_url: str) -> None:
    # `mlgrid up` twice in one run, the second with auth on and the workload as a user that is
    # not an admin (an access token): every tracking phase has both figures and their cost.
    done, whole = _run_quick(
        "bench", tmp_path / "results.json", "--targets", "auth", "--auth-rounds", "2",
        "--phases", "tracking", timeout=300,
    )  # fmt: skip
    saved = whole["results"]
    tracking = [p for p in PHASES if p.group == "tracking"]
    for target in ("mlgrid", "mlgrid-auth"):
        missing = [p.id for p in tracking if not saved[target].get(p.id, {}).get("value")]
        assert not missing, f"{target}: phases without a figure: {missing}"
    # The second round ran both again, auth on first this time, each with every figure.
    rounds = whole["meta"]["auth_rounds"]
    assert [r["order"] for r in rounds] == [["mlgrid", "mlgrid-auth"], ["mlgrid-auth", "mlgrid"]]
    for target in ("mlgrid", "mlgrid-auth"):
        missing = [p.id for p in tracking if not rounds[1][target].get(p.id, {}).get("value")]
        assert not missing, f"{target}, round 2: phases without a figure: {missing}"
    assert "mlgrid with auth off and on" in done.stdout
    table = done.stdout.split("mlgrid with auth off and on", 1)[1]
    assert "median of 2 alternating rounds" in table
    for phase in tracking:
        row = next(line for line in table.splitlines() if line.startswith(phase.title))
        # Two rounds, their median, and the CPU cost (unless a quick phase used no CPU tick).
        assert row.count("%") >= 3 and "error" not in row, row


def test_auth_table_says_what_auth_cost_each_tracking_phase() -> None:
    # A rate that lost 5 % passes; a latency 20 % longer does not; start-up gets no verdict.
    results = {
        "mlgrid": {"create_runs": {"value": 200.0}, "log_metric": {"value": 2.0}},
        "mlgrid-auth": {"create_runs": {"value": 190.0}, "log_metric": {"value": 2.4}},
    }
    table = report.auth_rows(list(PHASES), results, ["mlgrid", "mlgrid-auth"])
    rows = {row[0]: row[2:] for row in table[1:]}
    assert rows[BY_ID["create_runs"].title] == ["200", "190", "+5.0%", "yes"]
    assert rows[BY_ID["log_metric"].title] == ["2.00", "2.40", "+20.0%", "no"]
    assert rows[BY_ID["startup_seconds"].title] == ["-", "-", "-", ""]
    assert report.auth_rows(list(PHASES), results, ["mlgrid"]) == []


def test_auth_table_takes_the_median_of_paired_rounds() -> None:
    # One round skewed by other work (+40 %) does not decide: the median of 3 paired costs does.
    def pair(off: float, on: float) -> dict[str, Any]:
        return {
            "mlgrid": {"log_metric": {"value": off}},
            "mlgrid-auth": {"log_metric": {"value": on}},
        }

    rounds = [pair(1.0, 1.4), pair(1.2, 1.2), pair(0.9, 0.945)]
    results = {"mlgrid": rounds[0]["mlgrid"], "mlgrid-auth": rounds[0]["mlgrid-auth"]}
    table = report.auth_rows(list(PHASES), results, ["mlgrid", "mlgrid-auth"], rounds)
    assert table[0][4] == "cost in each of 3 rounds"
    row = next(r for r in table[1:] if r[0] == BY_ID["log_metric"].title)
    assert row[2:] == ["1.00", "1.20", "+40.0%, +0.0%, +5.0%", "+5.0%", "yes"]
    # A round where a side failed makes the phase's verdict unknown, not a pass.
    rounds[1]["mlgrid-auth"]["log_metric"] = {"error": "worker died"}
    row = next(
        r
        for r in report.auth_rows(list(PHASES), results, ["mlgrid", "mlgrid-auth"], rounds)[1:]
        if r[0] == BY_ID["log_metric"].title
    )
    assert row[3:] == ["error", "+40.0%, -, +5.0%", "-", "n/a"]


def test_auth_table_sets_the_cpu_of_auth_on_beside_auth_off() -> None:
    # Client + server CPU of the same work: 1.0 s off, 1.05 s on is +5 %.
    def spent(client: float, server: float) -> dict[str, Any]:
        return {"value": 1.0, "detail": {"cpu_seconds": {"client": client, "server": server}}}

    results = {
        "mlgrid": {"log_batch": spent(0.4, 0.6)},
        "mlgrid-auth": {"log_batch": spent(0.4, 0.65)},
    }
    table = report.auth_rows(list(PHASES), results, ["mlgrid", "mlgrid-auth"])
    assert table[0][-1] == "CPU cost"
    row = next(r for r in table[1:] if r[0] == BY_ID["log_batch"].title)
    assert row[-1] == "+5.0%"
    assert next(r for r in table[1:] if r[0] == BY_ID["log_metric"].title)[-1] == "-"


def test_cpu_seconds_of_a_process_tree_count_its_children() -> None:
    # A grandchild that burned ~0.3 s of CPU and was reaped still counts in the tree's figure
    # (its parent's children time), and in ours once we reaped the child.
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    script = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}]); print('burnt', flush=True); input()"
    before = cpu.own_seconds()
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        assert cpu.tree_seconds(child.pid) >= 0.3
    finally:
        child.communicate("\n", timeout=60)
    assert cpu.own_seconds() - before >= 0.3


def test_mlgrid_client_settings_reach_only_the_clients_of_mlgrids_sdk() -> None:
    from bench.scale import cli as scale_cli

    args = cli.parse_args(["--mlgrid-client-env", "MLGRID_CALL_PIPELINE=false"])
    assert cli._mlgrid_client_env("mlgrid", args) == {"MLGRID_CALL_PIPELINE": "false"}
    assert cli._mlgrid_client_env("mlgrid-auth", args) == {"MLGRID_CALL_PIPELINE": "false"}
    assert cli._mlgrid_client_env("mlgrid-plugin", args) == {}  # the mlflow client
    assert cli._mlgrid_client_env("mlflow", args) == {}
    scale = scale_cli.parse_args(["--mlgrid-client-env", "MLGRID_CALL_PIPELINE=false"])
    assert scale.mlgrid_client_env == [("MLGRID_CALL_PIPELINE", "false")]
    for parse in (cli.parse_args, scale_cli.parse_args):
        with pytest.raises(SystemExit):
            parse(["--mlgrid-client-env", "PATH=/tmp"])  # only MLGRID_ settings


@pytest.mark.postgres
@pytest.mark.timeout(180)
@pytest.mark.parametrize("writers", [1, 3])
def test_scale_cpu_phase_counts_every_writers_calls_and_sets_the_floors_beside_one(
    tmp_path: Path, postgres_url: str, writers: int
) -> None:
    # The cpu phase measures pipelined log_metric calls through `mlgrid up`: the CPU of the
    # clients (each on its own run, `writers` of them at once), the servers and the database.
    # With one writer it then measures the same bytes echoed by a bare gRPC server
    # (bench/scale/grpc_floor.py): the floor any Python client and server pay, and one durable
    # commit alone (bench/scale/db_floor.py): the database's floor. mlgrid's figure adds its
    # own work to both.
    done, saved = _run_quick(
        "bench.scale", tmp_path / "scale.json", "--phases", "cpu", "--targets", "mlgrid",
        "--cpu-writers", str(writers), timeout=160,
    )  # fmt: skip
    (row,) = saved["results"]["mlgrid"]["cpu"]["rows"]
    assert (row["size"], row["writers"]) == (300 * writers, writers)
    assert row["cpu_ms_per_call"] == pytest.approx(
        row["client_ms"] + row["server_ms"] + row["database_ms"]
    )
    assert row["client_ms"] > 0 and row["calls_per_s"] > 0
    assert row["database_ms"] > 0 and row["server_ms_by_process"]["tracking"] > 0
    assert f"cpu/log_metric mlgrid, {writers} writer(s):" in done.stdout
    if writers > 1:
        assert "grpc_floor_ms" not in row  # the bare round trip is one client's
        label = f"| {300 * writers:,} calls, {writers} writers at once |"
        assert f"{label} {row['cpu_ms_per_call']:,.3f} ms" in done.stdout
        assert f"{row['calls_per_s']:,.0f} calls/s" in done.stdout
        return
    # Over enough round trips for the kernel's CPU ticks (10 ms) to count the bare server's.
    assert row["grpc_floor_calls"] == 2_000
    assert row["grpc_floor_client_ms"] > 0 and row["grpc_floor_server_ms"] > 0
    assert row["grpc_floor_ms"] == pytest.approx(
        row["grpc_floor_client_ms"] + row["grpc_floor_server_ms"]
    )
    assert 0 < row["grpc_floor_ms"] < row["cpu_ms_per_call"]
    # Its client makes round trips as the SDK's pipelines do: on the caller's thread alone.
    assert row["grpc_floor_caller_thread"] is True
    assert f"bare gRPC round trip {row['grpc_floor_ms']:.3f} ms" in done.stdout
    # Then the database's floor, in the same database: one durable one-row commit at a time
    # (bench/scale/db_floor.py), at the server's own durability setting.
    assert row["db_floor_synchronous_commit"] == "on"
    assert row["db_floor_client_ms"] > 0 and row["db_floor_database_ms"] > 0
    assert row["db_floor_ms"] == pytest.approx(
        row["db_floor_client_ms"] + row["db_floor_database_ms"]
    )
    assert row["floors_ms"] == pytest.approx(row["grpc_floor_ms"] + row["db_floor_ms"])
    assert row["floors_ms"] < row["cpu_ms_per_call"]
    assert f"bare durable commit {row['db_floor_ms']:.3f} ms" in done.stdout
    assert f"= floors {row['floors_ms']:.3f} ms" in done.stdout
