"""The workload: the same calls, through MLflow's client API, whichever SDK implements it.

Each phase function takes an :class:`Sdk` (the client and entity classes of ``mlflow`` or
``mlgrid``), the :class:`~bench.phases.Scale` and a shared ``state`` dict (later phases reuse what
earlier ones built, e.g. the metric history written by the log_batch phase), and returns
``{"value": figure, "detail": {...}}``. Untimed setup stays outside the timed region.

Standard library only at module level: this module runs in MLflow's venv too.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import children
from bench.phases import Scale

SEARCH_FILTER = "metrics.acc > 0.5 and params.lr = '0.01'"
SEARCH_ORDER = ["metrics.acc DESC"]
LEARNING_RATES = ("0.01", "0.001", "0.1")
HISTORY_KEY = "history"
MIB = 1024 * 1024

Result = dict[str, Any]
State = dict[str, Any]


@dataclass
class Sdk:
    """An MLflow-compatible client and the entity classes ``log_batch`` takes."""

    name: str
    version: str
    uri: str
    client: Any
    Metric: Any
    Param: Any
    RunTag: Any


def load_sdk(name: str, uri: str) -> Sdk:
    """Imports ``mlflow`` or ``mlgrid`` (whichever this venv has) and builds a client for ``uri``."""
    if name == "mlflow":
        import mlflow
        from mlflow.entities import Metric, Param, RunTag

        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        return Sdk(name, mlflow.__version__, uri, client, Metric, Param, RunTag)
    if name == "mlgrid":
        import mlgrid
        from mlgrid.entities import Metric, Param, RunTag

        client = mlgrid.MlflowClient(uri)
        return Sdk(name, mlgrid.__version__, uri, client, Metric, Param, RunTag)
    raise ValueError(f"unknown sdk {name!r}; expected 'mlflow' or 'mlgrid'")


def now_ms() -> int:
    return int(time.time() * 1000)


def latency_summary(seconds: list[float]) -> Result:
    """p50 in milliseconds as the figure, with p90/mean/min/max in the detail."""
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return {
        "value": statistics.median(ms),
        "detail": {
            "calls": len(ms),
            "p90_ms": p90,
            "mean_ms": statistics.fmean(ms),
            "min_ms": ms[0],
            "max_ms": ms[-1],
        },
    }


def timed_calls(call: Callable[[int], object], count: int, warmup: int) -> list[float]:
    """Runs ``call(i)`` ``warmup`` times untimed, then ``count`` times, timing each."""
    for i in range(warmup):
        call(-1 - i)
    durations = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        durations.append(time.perf_counter() - start)
    return durations


def new_experiment(sdk: Sdk, purpose: str) -> str:
    experiment_id: str = sdk.client.create_experiment(f"bench-{purpose}-{uuid.uuid4().hex[:8]}")
    return experiment_id


def new_run(sdk: Sdk, state: State) -> str:
    if "experiment_id" not in state:
        state["experiment_id"] = new_experiment(sdk, "main")
    run_id: str = sdk.client.create_run(state["experiment_id"]).info.run_id
    return run_id


# --- tracking ---------------------------------------------------------------------------------


def create_runs(sdk: Sdk, scale: Scale, state: State) -> Result:
    """create_run with 3 tags, then one log_batch with 5 params (what start_run + log_params do)."""
    experiment_id = new_experiment(sdk, "runs")
    client, param = sdk.client, sdk.Param

    def one(i: int) -> None:
        tags = {"team": "bench", "index": str(i), "kind": "create_runs"}
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        params = [param(f"p{k}", f"value-{i}-{k}") for k in range(5)]
        client.log_batch(run_id, params=params)

    for i in range(scale.warmup):
        one(-1 - i)
    start = time.perf_counter()
    for i in range(scale.runs):
        one(i)
    elapsed = time.perf_counter() - start
    return {"value": scale.runs / elapsed, "detail": {"runs": scale.runs, "seconds": elapsed}}


def log_metric(sdk: Sdk, scale: Scale, state: State) -> Result:
    run_id = new_run(sdk, state)

    def one(i: int) -> None:
        sdk.client.log_metric(run_id, "loss", 1.0 / (abs(i) + 1), timestamp=now_ms(), step=abs(i))

    return latency_summary(timed_calls(one, scale.log_metric_calls, scale.warmup))


def _history_batches(sdk: Sdk, scale: Scale) -> list[list[Any]]:
    base = now_ms()
    return [
        [
            sdk.Metric(
                HISTORY_KEY, (b * scale.batch_size + k) * 0.001, base + b, b * scale.batch_size + k
            )
            for k in range(scale.batch_size)
        ]
        for b in range(scale.batches)
    ]


def log_batch(sdk: Sdk, scale: Scale, state: State) -> Result:
    """``batches`` calls of ``batch_size`` points into one metric (reused by metric_history)."""
    run_id = new_run(sdk, state)
    batches = _history_batches(sdk, scale)  # built before the clock starts
    spent = 0.0
    for metrics in batches:
        start = time.perf_counter()
        sdk.client.log_batch(run_id, metrics=metrics)
        spent += time.perf_counter() - start
    points = scale.batches * scale.batch_size
    state["history"] = (run_id, points)
    return {"value": points / spent, "detail": {"points": points, "seconds": spent}}


def metric_history(sdk: Sdk, scale: Scale, state: State) -> Result:
    """The whole history of the metric log_batch wrote (written here, untimed, if it did not run)."""
    if "history" not in state:
        run_id = new_run(sdk, state)
        for metrics in _history_batches(sdk, scale):
            sdk.client.log_batch(run_id, metrics=metrics)
        state["history"] = (run_id, scale.batches * scale.batch_size)
    run_id, points = state["history"]
    durations = []
    for _ in range(3):
        start = time.perf_counter()
        history = sdk.client.get_metric_history(run_id, HISTORY_KEY)
        durations.append(time.perf_counter() - start)
        if len(history) != points:
            raise AssertionError(f"get_metric_history returned {len(history)} points, not {points}")
    return {"value": statistics.median(durations), "detail": {"points": points, "runs": durations}}


def make_search_runs(sdk: Sdk, experiment_id: str, first: int, count: int) -> None:
    """Creates runs ``first .. first+count-1`` with metric acc and param lr (search fixture)."""
    for i in range(first, first + count):
        rng = random.Random(i)
        run_id = sdk.client.create_run(experiment_id).info.run_id
        sdk.client.log_batch(
            run_id,
            metrics=[sdk.Metric("acc", rng.random(), now_ms(), 0)],
            params=[sdk.Param("lr", LEARNING_RATES[i % len(LEARNING_RATES)])],
        )


def search_runs(sdk: Sdk, scale: Scale, state: State) -> Result:
    experiment_id = new_experiment(sdk, "search")
    setup_start = time.perf_counter()
    children.make_search_runs_in_parallel(
        sdk.name, sdk.uri, experiment_id, scale.search_runs, scale.setup_procs
    )
    setup_seconds = time.perf_counter() - setup_start
    expected = sum(
        1
        for i in range(scale.search_runs)
        if random.Random(i).random() > 0.5 and LEARNING_RATES[i % len(LEARNING_RATES)] == "0.01"
    )
    found: list[Any] = []

    def one(_i: int) -> None:
        found[:] = sdk.client.search_runs(
            [experiment_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER,
            max_results=scale.search_max_results,
        )

    result = latency_summary(timed_calls(one, scale.search_reps, scale.warmup))
    accs = [run.data.metrics["acc"] for run in found]
    if len(found) != min(expected, scale.search_max_results) or accs != sorted(accs, reverse=True):
        raise AssertionError(f"search returned {len(found)} runs (expected {expected} matches)")
    if any(run.data.params["lr"] != "0.01" or run.data.metrics["acc"] <= 0.5 for run in found):
        raise AssertionError("search returned a run that does not match the filter")
    result["detail"].update(
        runs=scale.search_runs, matches=expected, returned=len(found), setup_seconds=setup_seconds
    )
    return result


def concurrent_logging(sdk: Sdk, scale: Scale, state: State) -> Result:
    """``concurrent_procs`` processes, each with its own run, log_metric in a loop at once for
    ``concurrent_seconds``."""
    run_ids = [new_run(sdk, state) for _ in range(scale.concurrent_procs)]
    spans = children.log_concurrently(sdk.name, sdk.uri, run_ids, scale.concurrent_seconds)
    calls = sum(span["calls"] for span in spans)
    wall = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    return {
        "value": calls / wall,
        "detail": {"processes": len(spans), "calls": calls, "seconds": wall},
    }


# --- artifacts --------------------------------------------------------------------------------


def _artifact_run(sdk: Sdk, state: State) -> str:
    if "artifact_run" not in state:
        state["artifact_run"] = new_run(sdk, state)
    run_id: str = state["artifact_run"]
    return run_id


def _write_big_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)  # incompressible; one block repeated keeps setup fast
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(block)


def artifact_upload(sdk: Sdk, scale: Scale, state: State, workdir: Path) -> Result:
    run_id = _artifact_run(sdk, state)
    source = workdir / "big.bin"
    _write_big_file(source, scale.big_file_mib)
    start = time.perf_counter()
    sdk.client.log_artifact(run_id, str(source))
    elapsed = time.perf_counter() - start
    source.unlink()
    state["big_file"] = True
    return {
        "value": scale.big_file_mib / elapsed,
        "detail": {"mib": scale.big_file_mib, "seconds": elapsed},
    }


def artifact_download(sdk: Sdk, scale: Scale, state: State, workdir: Path) -> Result:
    run_id = _artifact_run(sdk, state)
    if not state.get("big_file"):
        source = workdir / "big.bin"
        _write_big_file(source, scale.big_file_mib)
        sdk.client.log_artifact(run_id, str(source))
        source.unlink()
    target = workdir / "down"
    target.mkdir(exist_ok=True)
    start = time.perf_counter()
    local = sdk.client.download_artifacts(run_id, "big.bin", str(target))
    elapsed = time.perf_counter() - start
    size = Path(local).stat().st_size
    Path(local).unlink()
    if size != scale.big_file_mib * MIB:
        raise AssertionError(f"downloaded {size} bytes, expected {scale.big_file_mib * MIB}")
    return {
        "value": scale.big_file_mib / elapsed,
        "detail": {"mib": scale.big_file_mib, "seconds": elapsed},
    }


def _small_dir(workdir: Path, scale: Scale) -> Path:
    folder = workdir / "small"
    folder.mkdir(exist_ok=True)
    for i in range(scale.small_files):
        (folder / f"file-{i:04d}.bin").write_bytes(os.urandom(scale.small_file_kib * 1024))
    return folder


def small_files(sdk: Sdk, scale: Scale, state: State, workdir: Path) -> Result:
    run_id = _artifact_run(sdk, state)
    folder = _small_dir(workdir, scale)
    start = time.perf_counter()
    sdk.client.log_artifacts(run_id, str(folder), artifact_path="small")
    elapsed = time.perf_counter() - start
    state["small_files"] = True
    return {
        "value": scale.small_files / elapsed,
        "detail": {"files": scale.small_files, "seconds": elapsed},
    }


def list_artifacts(sdk: Sdk, scale: Scale, state: State, workdir: Path) -> Result:
    run_id = _artifact_run(sdk, state)
    if not state.get("small_files"):
        sdk.client.log_artifacts(run_id, str(_small_dir(workdir, scale)), artifact_path="small")
    listed: list[Any] = []

    def one(_i: int) -> None:
        listed[:] = sdk.client.list_artifacts(run_id, "small")

    result = latency_summary(timed_calls(one, scale.list_reps, scale.warmup))
    if len(listed) != scale.small_files:
        raise AssertionError(f"listing returned {len(listed)} entries, not {scale.small_files}")
    return result


# --- registry ---------------------------------------------------------------------------------


def _model(sdk: Sdk, state: State) -> str:
    if "model" not in state:
        model = f"bench-model-{uuid.uuid4().hex[:8]}"
        sdk.client.create_registered_model(model)
        run_id = new_run(sdk, state)
        # The versions' source needs files (mlgrid refuses a source with none): one small
        # MLmodel, logged untimed.
        with tempfile.TemporaryDirectory(prefix="bench-model-") as scratch:
            descriptor = Path(scratch) / "MLmodel"
            descriptor.write_text("flavors: {}\n")
            sdk.client.log_artifact(run_id, str(descriptor), "model")
        source = sdk.client.get_run(run_id).info.artifact_uri.rstrip("/") + "/model"
        state["model"] = (model, source, run_id)
        state["versions"] = 0
    name: str = state["model"][0]
    return name


def _create_version(sdk: Sdk, state: State) -> None:
    name, source, run_id = state["model"]
    sdk.client.create_model_version(name, source, run_id=run_id)
    state["versions"] += 1


def create_versions(sdk: Sdk, scale: Scale, state: State) -> Result:
    _model(sdk, state)
    start = time.perf_counter()
    for _ in range(scale.versions):
        _create_version(sdk, state)
    elapsed = time.perf_counter() - start
    return {
        "value": scale.versions / elapsed,
        "detail": {"versions": scale.versions, "seconds": elapsed},
    }


def search_versions(sdk: Sdk, scale: Scale, state: State) -> Result:
    name = _model(sdk, state)
    while state["versions"] < scale.versions:
        _create_version(sdk, state)
    found: list[Any] = []

    def one(_i: int) -> None:
        found[:] = sdk.client.search_model_versions(f"name='{name}'", max_results=scale.versions)

    result = latency_summary(timed_calls(one, scale.version_search_reps, scale.warmup))
    if len(found) != state["versions"]:
        raise AssertionError(f"search found {len(found)} versions, not {state['versions']}")
    result["detail"]["versions"] = len(found)
    return result


def get_by_alias(sdk: Sdk, scale: Scale, state: State) -> Result:
    name = _model(sdk, state)
    if state["versions"] == 0:
        _create_version(sdk, state)
    sdk.client.set_registered_model_alias(name, "champion", "1")
    got: list[Any] = []

    def one(_i: int) -> None:
        got[:] = [sdk.client.get_model_version_by_alias(name, "champion")]

    result = latency_summary(timed_calls(one, scale.alias_reps, scale.warmup))
    if str(got[0].version) != "1":
        raise AssertionError(f"alias resolved to version {got[0].version}, not 1")
    return result


#: Phase id -> function; FILE_PHASES also take the worker's scratch directory.
CLIENT_PHASES: dict[str, Callable[[Sdk, Scale, State], Result]] = {
    "create_runs": create_runs,
    "log_metric": log_metric,
    "log_batch": log_batch,
    "metric_history": metric_history,
    "search_runs": search_runs,
    "concurrent_logging": concurrent_logging,
    "create_versions": create_versions,
    "search_versions": search_versions,
    "get_by_alias": get_by_alias,
}
FILE_PHASES: dict[str, Callable[[Sdk, Scale, State, Path], Result]] = {
    "artifact_upload": artifact_upload,
    "artifact_download": artifact_download,
    "small_files": small_files,
    "list_artifacts": list_artifacts,
}
