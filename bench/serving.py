"""The models-serving phases: ``mlgrid models serve`` against ``mlflow models serve``.

Both serve the same model directory: a scikit-learn LogisticRegression on 8 float columns,
saved by the real mlflow (its sklearn flavor, with a signature) from .venv-mlflow. MLflow's
server runs from .venv-mlflow, mlgrid's from this venv (which loads the sklearn flavor through
its loader module, ``mlflow.sklearn``); both with one worker, ``--env-manager local``, on
loopback. One client (this process, ``http.client`` on one keep-alive connection) sends the
same ``dataframe_split`` bodies to each, one request at a time: requests/s is the count over
the elapsed time, p50/p99 the per-request latencies. Single rows first, then 1,000-row bodies.

Run alone with ``python -m bench --phases serving [--quick]``; it starts neither tracking
server nor database.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import mlflow_env, servers

#: Targets that take part: MLflow's server and mlgrid's.
TARGETS = ("mlflow", "mlgrid")
FULL_REQUESTS = {"single": 3000, "batch": 100}
QUICK_REQUESTS = {"single": 300, "batch": 10}
WARMUP = 20
BATCH_ROWS = 1000
COLUMNS = [f"f{i}" for i in range(8)]

_SAVE_MODEL = """
import json, sys
import numpy as np, pandas as pd
import mlflow
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(11)
X = pd.DataFrame(rng.normal(size=(2000, 8)), columns=[f"f{i}" for i in range(8)])
y = (X["f0"] + 0.5 * X["f1"] - X["f2"] > 0).astype(int)
model = LogisticRegression().fit(X, y)
mlflow.sklearn.save_model(
    model, sys.argv[1], signature=mlflow.models.infer_signature(X, model.predict(X)),
    pip_requirements=["scikit-learn"], serialization_format="cloudpickle",
)
json.dump({"single": X.head(1).values.tolist(), "batch": X.head(1000).values.tolist()},
          open(sys.argv[2], "w"))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    env.pop("PYTHONPATH", None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # The model is saved with cloudpickle (skops is not installed everywhere); MLflow 3 loads
    # pickles only when told to. Both servers get the same setting.
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    return env


def _command(target: str, model_dir: Path, port: int) -> list[str]:
    flags = ["-m", str(model_dir), "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    flags += ["--env-manager", "local"]
    if target == "mlflow":
        return [str(mlflow_env.VENV / "bin" / "mlflow"), "models", "serve", *flags]
    return [str(Path(sys.executable).parent / "mlgrid"), "models", "serve", *flags]


def _wait_ready(port: int, process: subprocess.Popen[bytes], limit: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return time.monotonic() - started
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    raise RuntimeError(f"the server did not answer /ping within {limit:.0f} s")


def _drive(port: int, body: bytes, count: int) -> dict[str, float]:
    """``count`` sequential requests on one keep-alive connection, after a warm-up."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    latencies = []
    try:
        for i in range(WARMUP + count):
            start = time.perf_counter()
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {answer[:300]!r}")
            if i >= WARMUP:
                latencies.append(time.perf_counter() - start)
    finally:
        connection.close()
    latencies.sort()
    total = sum(latencies)
    return {
        "rps": len(latencies) / total,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def _serve_and_measure(
    target: str,
    model_dir: Path,
    bodies: dict[str, bytes],
    counts: dict[str, int],
    log_dir: Path,
) -> dict[str, Any]:
    port = servers.free_port()
    command = _command(target, model_dir, port)
    env = _env()
    # `mlflow models serve` runs `uvicorn` from PATH: its venv's.
    env["PATH"] = f"{Path(command[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    log = log_dir / f"{target}-serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are stopped with it
        )
    try:
        try:
            ready = _wait_ready(port, process)
        except RuntimeError as exc:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{exc}; its last lines: {' | '.join(tail)}") from None
        print(f"{target}: model server ready after {ready:.1f} s", file=sys.stderr, flush=True)
        figures = {kind: _drive(port, bodies[kind], counts[kind]) for kind in ("single", "batch")}
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    detail = {"command": " ".join(command), "requests": counts}
    return {
        f"serve_{kind}_{figure}": {"value": value, "detail": detail}
        for kind, measured in figures.items()
        for figure, value in measured.items()
    }


def run(quick: bool, targets: list[str]) -> dict[str, dict[str, Any]]:
    """Figures per target (``mlflow``, ``mlgrid``) for the serving phases."""
    # The model is saved by MLflow as users install it; without MLflow's column, by the
    # mlflow package of this venv (the dev extra's), so .venv-mlflow is not needed.
    python = sys.executable
    if "mlflow" in targets:
        mlflow_env.ensure()
        python = str(mlflow_env.python())
    counts = QUICK_REQUESTS if quick else FULL_REQUESTS
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        model_dir = Path(scratch) / "model"
        rows_file = Path(scratch) / "rows.json"
        subprocess.run(
            [python, "-c", _SAVE_MODEL, str(model_dir), str(rows_file)],
            env=_env(),
            # Not the checkout: `python -c` puts its folder first on the path, where
            # mlgrid.egg-info would show MLflow's venv mlgrid's plugin entry points, which it
            # then fails to import (a warning per entry point).
            cwd=scratch,
            check=True,
        )
        rows = json.loads(rows_file.read_text())
        bodies = {
            kind: json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows[kind]}}).encode()
            for kind in ("single", "batch")
        }
        for target in (t for t in TARGETS if t in targets):
            try:
                results[target] = _serve_and_measure(
                    target, model_dir, bodies, counts, Path(scratch)
                )
            except (RuntimeError, OSError) as exc:
                error = {"error": f"{target} model server: {exc}"}
                results[target] = {pid: error for pid in PHASE_IDS}
    return results


PHASE_IDS = tuple(
    f"serve_{kind}_{figure}" for kind in ("single", "batch") for figure in ("rps", "p50", "p99")
)
