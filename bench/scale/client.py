"""Client processes of the scale tier, run in mlgrid's venv or MLflow's (standard library only at
module level).

``log-metric``: warms up, says ``ready``, waits for ``go`` on stdin (the controller samples the
servers' CPU between the two), makes the timed ``log_metric`` calls and prints its own CPU time
for them. ``embedded``: the newcomer's script, timed by the controller as a whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

RESULT_MARKER = "SCALE-RESULT "


def _client(sdk: str, uri: str) -> Any:
    if sdk == "mlflow":
        import mlflow

        return mlflow.MlflowClient(tracking_uri=uri)
    import mlgrid

    return mlgrid.MlflowClient(uri)


def log_metric(args: argparse.Namespace) -> int:
    client = _client(args.sdk, args.uri)
    for i in range(args.warmup):
        client.log_metric(args.run_id, "warm", float(i), step=i)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    before = os.times()
    start = time.perf_counter()
    for i in range(args.calls):
        client.log_metric(args.run_id, "cpu", float(i), step=i)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    print(RESULT_MARKER + json.dumps({"cpu_seconds": cpu, "wall_seconds": wall}), flush=True)
    return 0


def embedded(args: argparse.Namespace) -> int:
    """A newcomer's first script: one run, 1,000 log_metric calls, one log_metrics of 100 keys,
    on the SDK's local SQLite store."""
    if args.sdk == "mlflow":
        import mlflow as sdk
    else:
        import mlgrid as sdk  # type: ignore[no-redef]
    sdk.set_tracking_uri(args.uri)
    with sdk.start_run():
        for i in range(args.calls):
            sdk.log_metric("loss", 1.0 / (i + 1), step=i)
        sdk.log_metrics({f"m{k}": float(k) for k in range(args.keys)})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale.client")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("log-metric")
    one.add_argument("--sdk", choices=("mlflow", "mlgrid"), required=True)
    one.add_argument("--uri", required=True)
    one.add_argument("--run-id", required=True)
    one.add_argument("--calls", type=int, default=2000)
    one.add_argument("--warmup", type=int, default=100)
    emb = sub.add_parser("embedded")
    emb.add_argument("--sdk", choices=("mlflow", "mlgrid"), required=True)
    emb.add_argument("--uri", required=True)
    emb.add_argument("--calls", type=int, default=1000)
    emb.add_argument("--keys", type=int, default=100)
    args = parser.parse_args(argv)
    return log_metric(args) if args.command == "log-metric" else embedded(args)


if __name__ == "__main__":
    sys.exit(main())
