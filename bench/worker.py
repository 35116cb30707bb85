"""The client side of the benchmark, run as its own process in the venv of the SDK it uses.

    python -m bench.worker run --sdk mlgrid --uri grpc://127.0.0.1:PORT --phases log_metric,...
    python -m bench.worker run --sdk mlflow --uri http://127.0.0.1:PORT --phases ...

``run`` executes the phases in order and prints one ``BENCH-RESULT {json}`` line:
``{"sdk": ..., "version": ..., "results": {phase: {"value", "detail"} | {"error"}}}``.
``setup-search`` and ``log-loop`` are the children bench.children starts. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import cpu, workload
from bench.children import READY, RESULT_MARKER
from bench.phases import FULL, QUICK


def _emit(payload: Any) -> None:
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    scale = QUICK if args.quick else FULL
    sdk = workload.load_sdk(args.sdk, args.uri)
    state: workload.State = {}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlgrid-bench-") as scratch:
        for phase in [p for p in args.phases.split(",") if p]:
            client, server = cpu.own_seconds(), cpu.tree_seconds(args.server_pid or 0)
            try:
                if phase in workload.CLIENT_PHASES:
                    results[phase] = workload.CLIENT_PHASES[phase](sdk, scale, state)
                elif phase in workload.FILE_PHASES:
                    results[phase] = workload.FILE_PHASES[phase](sdk, scale, state, Path(scratch))
                else:
                    results[phase] = {"error": f"no client-side phase named {phase!r}"}
            except Exception as exc:  # one broken phase must not hide the others' figures
                traceback.print_exc()
                results[phase] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            if args.server_pid and "detail" in results[phase]:
                results[phase]["detail"]["cpu_seconds"] = {
                    "client": cpu.own_seconds() - client,
                    "server": cpu.tree_seconds(args.server_pid) - server,
                }
            print(f"  [{args.sdk}] {phase}: {_brief(results[phase])}", file=sys.stderr, flush=True)
    _emit({"sdk": sdk.name, "version": sdk.version, "results": results})
    return 0


def _brief(result: dict[str, Any]) -> str:
    return result["error"] if "error" in result else f"{result['value']:.4g}"


def setup_search(args: argparse.Namespace) -> int:
    sdk = workload.load_sdk(args.sdk, args.uri)
    workload.make_search_runs(sdk, args.experiment_id, args.first, args.count)
    _emit({"created": args.count})
    return 0


def log_loop(args: argparse.Namespace) -> int:
    sdk = workload.load_sdk(args.sdk, args.uri)
    sdk.client.log_metric(args.run_id, "warmup", 0.0)  # connect before the start signal
    print(READY, flush=True)
    sys.stdin.readline()
    start = time.time()
    deadline = time.monotonic() + args.seconds
    step = 0
    while time.monotonic() < deadline:
        sdk.client.log_metric(args.run_id, "loss", 1.0 / (step + 1), step=step)
        step += 1
    end = time.time()
    _emit({"start": start, "end": end, "calls": step})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "setup-search", "log-loop"):
        sub = commands.add_parser(name)
        sub.add_argument("--sdk", choices=("mlflow", "mlgrid"), required=True)
        sub.add_argument("--uri", required=True)
        if name == "run":
            sub.add_argument("--phases", required=True)
            sub.add_argument("--quick", action="store_true")
            # The server's process tree, whose CPU each phase reports (detail.cpu_seconds).
            sub.add_argument("--server-pid", type=int)
        elif name == "setup-search":
            sub.add_argument("--experiment-id", required=True)
            sub.add_argument("--first", type=int, required=True)
            sub.add_argument("--count", type=int, required=True)
        else:
            sub.add_argument("--run-id", required=True)
            sub.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    handler = {"run": run, "setup-search": setup_search, "log-loop": log_loop}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
