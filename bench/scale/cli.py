"""``python -m bench.scale``: for each server (mlgrid, MLflow) a fresh PostgreSQL database, the
server started on it, the phases run in order, the server stopped and the database dropped; then
the embedded phase (no server). Figures go to bench/results/scale-<time>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from bench import mlflow_env, servers
from bench.cli import add_client_env_option
from bench.scale import phases, report

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
ALL_PHASES = (*phases.SERVER_PHASES, "embedded")
GIB = 1024


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes takes comma-separated run counts, e.g. 10000,100000; got {text!r}"
        ) from None
    if not sizes or sizes[0] < 100:
        raise argparse.ArgumentTypeError("--sizes: every size must be at least 100 runs")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="How mlgrid's costs grow with the store, beside MLflow's (not in CI).",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--sizes", type=_sizes, help="runs in the search experiment (default 10000,100000,1000000)"
    )
    parser.add_argument(
        "--phases",
        default=",".join(ALL_PHASES),
        help=f"comma-separated subset of {', '.join(ALL_PHASES)}; default: all",
    )
    parser.add_argument(
        "--targets", default="mlgrid,mlflow", help="mlgrid and/or mlflow; default: both"
    )
    parser.add_argument("--history-points", type=int, help="default 10,000,000")
    parser.add_argument(
        "--mlflow-history-points",
        type=int,
        default=1_000_000,
        help="MLflow pages a history by offset (each page rereads the ones before it): its "
        "history is capped at this many points (default 1,000,000)",
    )
    parser.add_argument(
        "--artifact-gib", type=float, help="size of the upload/download (default 10 GiB)"
    )
    parser.add_argument(
        "--embedded-async-commit",
        action="store_true",
        help="the embedded phase's mlgrid commits asynchronously (MLGRID_STORE_ASYNC_COMMIT: "
        "survives the process's death, not a power cut; MLflow stays on its durable default)",
    )
    parser.add_argument(
        "--cpu-writers",
        type=int,
        default=1,
        help="client processes of the cpu phase logging at once, each on its own run (default 1)",
    )
    add_client_env_option(parser, "mlgrid's client processes (cpu and embedded phases)")
    parser.add_argument("--output", type=Path, help="JSON results file (default: bench/results/)")
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(ALL_PHASES)
    if unknown:
        parser.error(f"--phases: unknown {sorted(unknown)}; allowed: {', '.join(ALL_PHASES)}")
    targets = [t for t in args.targets.split(",") if t]
    if not targets or set(targets) - {"mlgrid", "mlflow"}:
        parser.error(f"--targets: allowed are mlgrid and mlflow; got {args.targets!r}")
    args.targets = targets
    if not 1 <= args.cpu_writers <= 64:
        parser.error(f"--cpu-writers: from 1 to 64; got {args.cpu_writers}")
    return args


def options(args: argparse.Namespace) -> tuple[phases.Options, list[str]]:
    """The sizes, and notes on what had to be made smaller than asked."""
    quick = args.quick
    notes: list[str] = []
    artifact_mib = int((args.artifact_gib or (0.25 if quick else 10)) * GIB)
    free_mib = shutil.disk_usage(tempfile.gettempdir()).free // (1024 * 1024)
    # The source file, the stored copy and the downloaded copy exist at once.
    if 3 * artifact_mib > free_mib * 0.8:
        smaller = int(free_mib * 0.8 / 3)
        notes.append(
            f"artifact transfer: {artifact_mib:,} MiB asked, {free_mib:,} MiB free in "
            f"{tempfile.gettempdir()}; used {smaller:,} MiB"
        )
        artifact_mib = smaller
    return (
        phases.Options(
            sizes=args.sizes or ([1_000, 10_000] if quick else [10_000, 100_000, 1_000_000]),
            history_points=args.history_points or (200_000 if quick else 10_000_000),
            mlflow_history_points=args.mlflow_history_points,
            metric_keys=1_000 if quick else 10_000,
            list_entries=5_000 if quick else 100_000,
            artifact_mib=artifact_mib,
            log_metric_calls=300 if quick else 2_000,
            embedded_reps=2 if quick else 5,
            cpu_writers=args.cpu_writers,
            embedded_async_commit=args.embedded_async_commit,
            mlgrid_client_env=dict(args.mlgrid_client_env),
            calls=5 if quick else 20,
            budget_seconds=10 if quick else 60,
        ),
        notes,
    )


def run_server(
    target: str, chosen: list[str], opts: phases.Options, workdir: Path
) -> dict[str, Any]:
    from bench.scale.remote import MlflowRest, MlgridSdk

    results: dict[str, Any] = {}
    with (
        servers.fresh_database(f"scale_{target}") as db_url,
        servers.started(target, db_url, workdir) as server,
    ):
        remote: Any = MlgridSdk(server.uri) if target == "mlgrid" else MlflowRest(server.uri)
        ctx = phases.Context(target, server, remote, db_url, workdir, opts)
        for name in chosen:
            print(f"{target}: {name}", flush=True)
            try:
                results[name] = phases.SERVER_PHASES[name](ctx)
            except Exception as exc:  # one phase failing must not lose the others
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        if target == "mlgrid":
            remote.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts, notes = options(args)
    chosen = args.phases.split(",")
    server_phases = [p for p in chosen if p in phases.SERVER_PHASES]
    mlflow_version = mlflow_env.ensure() if "mlflow" in args.targets or "embedded" in chosen else ""
    import mlgrid

    started = datetime.datetime.now(datetime.timezone.utc)
    document: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, "-m", "bench.scale", *(argv or sys.argv[1:])]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": os.getloadavg(),
        },
        "versions": {"mlgrid": mlgrid.__version__, "mlflow": mlflow_version},
        "options": opts.__dict__,
        "notes": notes,
        "results": {},
    }
    for note in notes:
        print(f"note: {note}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mlgrid-scale-") as tmp:
        for target in args.targets:
            if server_phases:
                workdir = Path(tmp) / target
                workdir.mkdir()
                document["results"][target] = run_server(target, server_phases, opts, workdir)
        if "embedded" in chosen:
            print("embedded", flush=True)
            document["results"]["embedded"] = phases.embedded(opts, Path(tmp))
    document["machine"]["load_after"] = os.getloadavg()
    output = args.output or RESULTS_DIR / f"scale-{started:%Y%m%dT%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    table = report.markdown(document)
    output.with_suffix(".md").write_text(table)
    print(table)
    print(f"results: {output}")
    return 0
