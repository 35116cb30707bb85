"""A client process that loads a stack until told to stop (tests/test_replicas.py).

``python replica_load.py <tracking-uri> <run-id> <worker> <stop-file>``: until ``stop-file``
exists, logs metric ``w<worker>`` at steps 0, 1, 2, ... (one call each, idempotent by contract),
reads the run back, and creates a run now and then (not idempotent). Prints one JSON line at the
end: the steps and runs the server acknowledged and each failure, by call.
"""

from __future__ import annotations

import json
import os
import sys
import time

import mlgrid
from mlgrid.client import Client


def main() -> None:
    uri, run_id, worker, stop_file = sys.argv[1:5]
    client = Client(uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    acked_steps: list[int] = []
    acked_runs: list[str] = []
    failures: dict[str, list[str]] = {"log_metric": [], "get_run": [], "create_run": []}
    step = 0
    while not os.path.exists(stop_file):
        try:
            client.log_metric(run_id, f"w{worker}", float(step), timestamp=1000 + step, step=step)
            acked_steps.append(step)
        except mlgrid.MlgridException as exc:
            failures["log_metric"].append(f"{step}: {exc}")
        step += 1
        try:
            client.get_run(run_id)
        except mlgrid.MlgridException as exc:
            failures["get_run"].append(str(exc))
        if step % 10 == 0:
            try:
                run = client.create_run(experiment_id, tags={"worker": worker})
                acked_runs.append(run.info.run_id)
            except mlgrid.MlgridException as exc:
                failures["create_run"].append(str(exc))
        time.sleep(0.002)
    print(json.dumps({"steps": acked_steps, "runs": acked_runs, "failures": failures}))


if __name__ == "__main__":
    main()
