"""``python -m bench``: runs the workload against each target and prints the comparison.

For each target (``mlflow``: the MLflow server as shipped; ``mlflow-nodelay``: the same with
TCP_NODELAY forced on; ``mlgrid``: ``mlgrid up`` with mlgrid's SDK; ``mlgrid-plugin`` and
``mlgrid-rest``: ``mlgrid up`` with the unmodified ``mlflow`` client through mlgrid's MLflow
plugin and through its REST port) the controller creates a fresh PostgreSQL database, starts the
server, measures start-to-healthy, runs one client worker per phase group in that target's venv,
stops the server and drops the database. Then it prints the tables and writes every figure (with
details, versions and commands) to a JSON file under bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import mlflow_env, report, servers, serving
from bench.children import RESULT_MARKER
from bench.phases import FULL, GROUPS, PHASES, QUICK, Phase, select

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark mlgrid against the real MLflow server, side by side.",
    )
    parser.add_argument(
        "--phases",
        help=f"comma-separated groups ({', '.join(GROUPS)}) and/or phase ids; default: all",
    )
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument(
        "--targets",
        default=",".join(servers.TARGETS),
        help=f"comma-separated subset of {', '.join(servers.TARGETS)}, or "
        f"{', '.join(servers.TARGET_GROUPS)} (every target whose client is the unmodified "
        "mlflow package); default: all",
    )
    parser.add_argument(
        "--auth-rounds",
        type=int,
        default=3,
        help="with both mlgrid and mlgrid-auth: how many times each runs the tracking phases, "
        "alternately (the auth table's cost is the median of the paired rounds; default 3)",
    )
    add_client_env_option(parser, "the client processes of the targets that use mlgrid's SDK")
    parser.add_argument("--output", type=Path, help="JSON results file (default: bench/results/)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="a previous results file: its figures for targets not run now join the table "
        "(e.g. MLflow's, which do not change when mlgrid does)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="print the table of an existing results file and exit (nothing is run)",
    )
    args = parser.parse_args(argv)
    if args.auth_rounds < 1:
        parser.error(f"--auth-rounds: {args.auth_rounds} is not a positive number of rounds")
    named = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in named if t not in servers.TARGETS and t not in servers.TARGET_GROUPS]
    if unknown or not named:
        known = ", ".join([*servers.TARGETS, *servers.TARGET_GROUPS])
        parser.error(f"--targets: unknown {unknown}; choose from {known}")
    wanted = {t for name in named for t in servers.TARGET_GROUPS.get(name, (name,))}
    args.targets = [t for t in servers.TARGETS if t in wanted]  # always in run order
    needs_mlflow = [t for t in args.targets if servers.TARGETS[t].server == "mlgrid"]
    needs_mlflow = [t for t in needs_mlflow if servers.TARGETS[t].sdk == "mlflow"]
    if needs_mlflow and importlib.util.find_spec("mlflow") is None:
        parser.error(
            f"--targets {','.join(needs_mlflow)} run the mlflow client in this venv "
            f"({sys.prefix}), which has no mlflow package: `make venv` installs it"
        )
    try:
        args.selected = select(args.phases)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def run_worker(
    target: str,
    uri: str,
    phases: list[Phase],
    quick: bool,
    sampler_for: int | None = None,
    client_env: dict[str, str] | None = None,
    server_pid: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runs the client worker for ``phases``; returns (its answer, extra controller figures)."""
    spec = servers.TARGETS[target]
    # MLflow's server gets the client of its own venv; mlgrid's venv has the real `mlflow` (the
    # dev extra) beside mlgrid's plugin, so the plugin and REST columns run their client there.
    python, workdir = sys.executable, servers.ROOT
    if spec.server == "mlflow":
        python, workdir = str(mlflow_env.python()), mlflow_env.client_workdir()
    command = [python, "-m", "bench.worker", "run", "--sdk", spec.sdk, "--uri", uri]
    command += ["--phases", ",".join(p.id for p in phases)] + (["--quick"] if quick else [])
    command += ["--server-pid", str(server_pid)] if server_pid else []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    env.pop("PYTHONPATH", None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["MLFLOW_LOGGING_LEVEL"] = "WARNING"  # not a line per model version on the console
    env.update(client_env or {})  # the auth-on target's credentials
    extra: dict[str, Any] = {}
    sampler = (
        servers.RssSampler(sampler_for, match="artifacts" if target == "mlgrid" else None)
        if sampler_for
        else None
    )
    with sampler or contextlib.nullcontext():
        done = subprocess.run(
            command, cwd=workdir, env=env, stdout=subprocess.PIPE, text=True, timeout=3600
        )
    if sampler:
        extra["artifact_rss_growth"] = {
            "value": max(sampler.growth_mib, 0.001),
            "detail": {"processes": len(sampler.procs), "artifacts_process": sampler.matched},
        }
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            answer: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return answer, extra
    error = {"error": f"worker exited with {done.returncode} and no result (see stderr above)"}
    return {"results": {p.id: error for p in phases}}, {}


def bench_target(target: str, args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{target}-") as scratch,
        servers.fresh_database(target) as db_url,
        servers.started(target, db_url, Path(scratch)) as server,
    ):
        print(f"{target}: healthy after {server.startup_seconds:.2f} s", file=sys.stderr)
        startup = {
            "startup_seconds": server.startup_seconds,
            "startup_processes": server.startup_processes,
            "startup_rss": server.startup_rss_mib,
        }
        for phase in args.selected:
            if phase.id in startup:
                results[phase.id] = {"value": startup[phase.id], "detail": {}}
        for group in GROUPS:
            if servers.TARGETS[target].auth and group != "tracking":
                continue  # auth on is compared with auth off on the tracking phases only
            phases = [p for p in args.selected if p.group == group and not p.controller]
            if not phases:
                continue
            sample = group == "artifacts" and any(
                p.id == "artifact_rss_growth" for p in args.selected
            )
            pid = server.process.pid if sample and target == "mlgrid" else None
            answer, extra = run_worker(
                target,
                server.uri,
                phases,
                args.quick,
                sampler_for=pid,
                client_env={**server.client_env, **_mlgrid_client_env(target, args)},
                server_pid=server.process.pid,
            )
            results.update(answer["results"])
            results.update(extra)
            meta.setdefault("versions", {})[target] = answer.get("version")
        meta.setdefault("commands", {})[target] = shlex.join(server.command)
    meta.setdefault("notes", {})[target] = server.notes
    if target == "mlflow-nodelay" and server.notes.get("nodelay_processes") == "0":
        print("warning: the TCP_NODELAY fix was not applied by any server process", file=sys.stderr)
    return results


def _mlgrid_client_env(target: str, args: argparse.Namespace) -> dict[str, str]:
    """--mlgrid-client-env settings, for the targets whose client is mlgrid's SDK."""
    return dict(args.mlgrid_client_env) if servers.TARGETS[target].sdk == "mlgrid" else {}


def add_client_env_option(parser: argparse.ArgumentParser, clients: str) -> None:
    """``--mlgrid-client-env NAME=VALUE`` (repeatable): settings for ``clients``."""
    parser.add_argument(
        "--mlgrid-client-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=client_setting,
        help=f"a setting for {clients}, e.g. MLGRID_CALL_PIPELINE=false; repeatable",
    )


def client_setting(text: str) -> tuple[str, str]:
    """``--mlgrid-client-env`` values: ``MLGRID_NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("MLGRID_"):
        raise argparse.ArgumentTypeError(f"expected MLGRID_NAME=VALUE, got {text[:100]!r}")
    return name, value


def auth_rounds(
    args: argparse.Namespace, results: report.Results, meta: dict[str, Any]
) -> list[dict[str, Any]]:
    """mlgrid with auth off and on, their tracking phases again, alternately (A B, B A, ...):
    round 1 is the main pass; each later round starts both servers afresh in the same minutes,
    so a change of machine load between them costs one round, not the verdict (report.py takes
    the median of the rounds' paired costs)."""
    pair = ("mlgrid", "mlgrid-auth")
    tracking = [p for p in args.selected if p.group == "tracking"]
    if not tracking or any(t not in args.targets for t in pair):
        return []
    ids = {p.id for p in tracking}

    def kept(figures: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in figures.items() if k in ids}

    rounds = [{**{t: kept(results[t]) for t in pair}, "order": list(pair)}]
    rounds[0]["loadavg"] = os.getloadavg()
    again = argparse.Namespace(**{**vars(args), "selected": tracking})
    for n in range(2, args.auth_rounds + 1):
        order = pair[::-1] if n % 2 == 0 else pair  # ABBA: neither always goes first
        figures: dict[str, Any] = {"order": list(order)}
        for target in order:
            print(
                f"== {target} (auth round {n} of {args.auth_rounds})", file=sys.stderr, flush=True
            )
            figures[target] = kept(bench_target(target, again, meta))
        figures["loadavg"] = os.getloadavg()
        rounds.append(figures)
    return rounds


def show(path: Path, markdown: bool) -> int:
    saved = json.loads(path.read_text())
    results: report.Results = saved["results"]
    phases = [p for p in PHASES if any(p.id in figures for figures in results.values())]
    shown = [t for t in servers.TARGETS if t in results]
    rounds = saved["meta"].get("auth_rounds")
    print(report.render_all(phases, results, shown, markdown=markdown, auth_rounds=rounds))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return show(args.report, args.markdown)
    meta: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "scale": (QUICK if args.quick else FULL).to_dict(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine skews every figure: record how busy it was.
            "loadavg_at_start": os.getloadavg(),
        },
    }
    if any(servers.TARGETS[t].server == "mlflow" for t in args.targets):
        meta["mlflow_version"] = mlflow_env.ensure()
    results: report.Results = {}
    # Serving phases run their own model servers (bench/serving.py), no tracking server.
    serving_phases = [p for p in args.selected if p.group == "serving"]
    server_phases = [p for p in args.selected if p.group != "serving"]
    for target in args.targets if server_phases else []:
        print(f"== {target}", file=sys.stderr, flush=True)
        results[target] = bench_target(target, args, meta)
    if server_phases:
        meta["auth_rounds"] = auth_rounds(args, results, meta)
    if serving_phases:
        print("== serving", file=sys.stderr, flush=True)
        for target, figures in serving.run(args.quick, args.targets).items():
            wanted = {p.id for p in serving_phases}
            results.setdefault(target, {}).update({k: v for k, v in figures.items() if k in wanted})
    if args.reuse:
        previous = json.loads(args.reuse.read_text())
        if previous["meta"].get("scale") != meta["scale"]:
            print(f"error: {args.reuse} was measured at another scale", file=sys.stderr)
            return 2
        for target, figures in previous["results"].items():
            if target not in results:
                results[target] = figures
                meta.setdefault("reused", {})[target] = {
                    "file": str(args.reuse),
                    "started": previous["meta"].get("started"),
                    "command": previous["meta"].get("commands", {}).get(target),
                    "version": previous["meta"].get("versions", {}).get(target),
                }
    meta["machine"]["loadavg_at_end"] = os.getloadavg()
    shown = [t for t in servers.TARGETS if t in results]
    print(
        report.render_all(
            args.selected,
            results,
            shown,
            markdown=args.markdown,
            auth_rounds=meta.get("auth_rounds"),
        )
    )
    for line in report.errors(results):
        print(f"error: {line}", file=sys.stderr)
    output = args.output or RESULTS_DIR / f"bench-{meta['started'].replace(':', '')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"results written to {output}", file=sys.stderr)
    return 1 if report.errors(results) else 0
