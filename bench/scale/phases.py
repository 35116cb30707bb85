"""The phases of the scale tier. Each takes the started server, its client (remote.py), the
options and a work directory, and returns ``{"rows": [...], "detail": {...}}``: one row per size
(a figure and what it means), so mlgrid's and MLflow's rows line up in the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import mlflow_env, servers
from bench.scale import db_floor, grpc_floor, populate
from bench.scale.client import RESULT_MARKER

CLIENT_SCRIPT = Path(__file__).resolve().parent / "client.py"
SEARCH_FILTER = f"params.{populate.PARAM_KEY} = '0.01'"
SEARCH_ORDER = [f"metrics.{populate.METRIC_KEY} DESC"]
HISTORY_KEY = "loss"
MIB = 1024 * 1024
#: Round trips the bare gRPC floor is measured over, at the least. Linux accounts another
#: process's CPU in clock ticks (10 ms): over a few hundred calls a fast machine's bare server
#: reads 0 or one tick, so a quick run's floor would be noise. The database's floor (one durable
#: commit) is measured over as many.
FLOOR_MIN_CALLS = 2_000

Row = dict[str, Any]


@dataclass
class Options:
    sizes: list[int]
    history_points: int
    mlflow_history_points: int
    metric_keys: int
    list_entries: int
    artifact_mib: int
    log_metric_calls: int
    embedded_reps: int
    #: Client processes of the cpu phase logging at once, each on its own run.
    cpu_writers: int = 1
    #: The embedded phase's mlgrid runs with MLGRID_STORE_ASYNC_COMMIT=true (SQLite
    #: synchronous=NORMAL: survives the process's death, not a power cut; MLflow stays durable).
    embedded_async_commit: bool = False
    #: Settings for mlgrid's client processes in the cpu and embedded phases (--mlgrid-client-env),
    #: e.g. MLGRID_CALL_PIPELINE=false to measure without call pipelines.
    mlgrid_client_env: dict[str, str] = field(default_factory=dict)
    #: Timed calls per figure, and the wall-clock budget after which fewer are enough.
    calls: int = 20
    budget_seconds: float = 60.0


@dataclass
class Context:
    target: str
    server: servers.Server
    remote: Any
    db_url: str
    workdir: Path
    options: Options


def timed(call: Callable[[], object], calls: int, budget: float, warmup: int = 2) -> Row:
    """p50/p90/min of ``call`` in ms: ``calls`` timed calls, or fewer (at least 3) when they
    would overrun ``budget`` seconds."""
    for _ in range(warmup):
        call()
    spent, seconds = 0.0, list[float]()
    while len(seconds) < calls and (len(seconds) < 3 or spent < budget):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
        spent += seconds[-1]
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))],
        "min_ms": ms[0],
        "calls": len(ms),
    }


def _server_name(ctx: Context) -> str:
    return servers.TARGETS[ctx.target].server


# --- search at 10k, 100k, 1M runs ----------------------------------------------------------------


def search(ctx: Context) -> dict[str, Any]:
    """One experiment grown to each size in turn; a page of 100 with a param filter (a third of
    the runs match) ordered by a metric."""
    remote, opts = ctx.remote, ctx.options
    experiment_id = remote.create_experiment("scale-search")
    artifact_root = _artifact_root(ctx)
    rows, have = [], 0
    for size in sorted(opts.sizes):
        start = time.perf_counter()
        populate.add_runs(
            _server_name(ctx), ctx.db_url, experiment_id, artifact_root, have + 1, size
        )
        fill = time.perf_counter() - start
        have = size
        names = remote.search(experiment_id, SEARCH_FILTER, SEARCH_ORDER)
        if len(names) != 100:
            raise AssertionError(f"search at {size} runs returned {len(names)} runs, not 100")
        figures = timed(
            lambda: remote.search(experiment_id, SEARCH_FILTER, SEARCH_ORDER),
            opts.calls,
            opts.budget_seconds,
        )
        rows.append({"size": size, **figures, "populate_s": fill, "first_runs": names[:3]})
        print(f"  search {ctx.target} {size:,} runs: p50 {figures['p50_ms']:.1f} ms", flush=True)
    return {"rows": rows, "detail": {"filter": SEARCH_FILTER, "order_by": SEARCH_ORDER}}


def _artifact_root(ctx: Context) -> str:
    if _server_name(ctx) == "mlgrid":
        return (ctx.workdir / "mlgrid-artifacts").as_uri()
    return "mlflow-artifacts:"


# --- a long metric history, streamed --------------------------------------------------------------


def history(ctx: Context) -> dict[str, Any]:
    remote = ctx.remote
    points = (
        ctx.options.history_points
        if _server_name(ctx) == "mlgrid"
        else min(ctx.options.history_points, ctx.options.mlflow_history_points)
    )
    experiment_id = remote.create_experiment("scale-history")
    run_id, _ = remote.create_run(experiment_id)
    start = time.perf_counter()
    populate.add_history(_server_name(ctx), ctx.db_url, run_id, HISTORY_KEY, points)
    fill = time.perf_counter() - start
    rows = []
    tree = servers.process_tree(ctx.server.process.pid)
    for attempt in ("first", "second"):
        # CPU of this client, every server process and the database's backends (those the
        # read opens start at zero), so the figure does not hang on the machine's load alone.
        server_before, db_before = _cpu_by_pid(tree), _cpu_by_pid(_backends(ctx.db_url))
        client_before = time.process_time()
        with servers.RssSampler(ctx.server.process.pid) as rss:
            start = time.perf_counter()
            got = remote.stream_history(run_id, HISTORY_KEY)
            seconds = time.perf_counter() - start
        client_cpu = time.process_time() - client_before
        server_cpu = _cpu_since(tree, server_before)
        db_cpu = _cpu_since(_backends(ctx.db_url), db_before)
        if got != points:
            raise AssertionError(f"history returned {got} points, not {points}")
        rows.append(
            {"size": points, "read": attempt, "seconds": seconds, "rss_growth_mib": rss.growth_mib,
             "client_cpu_s": client_cpu, "server_cpu_s": server_cpu, "database_cpu_s": db_cpu,
             "load_1m": os.getloadavg()[0]}
        )  # fmt: skip
        print(
            f"  history {ctx.target} {points:,} points ({attempt}): {seconds:.2f} s, "
            f"+{rss.growth_mib:.0f} MiB; CPU client {client_cpu:.2f} s, servers "
            f"{server_cpu:.2f} s, database {db_cpu:.2f} s; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return {"rows": rows, "detail": {"populate_s": fill}}


# --- a run with many metric keys ----------------------------------------------------------------


def wide_run(ctx: Context) -> dict[str, Any]:
    remote, keys = ctx.remote, ctx.options.metric_keys
    experiment_id = remote.create_experiment("scale-wide")
    run_id, _ = remote.create_run(experiment_id)
    for first in range(0, keys, 1000):
        remote.log_metrics(
            run_id, {f"m{k:05d}": float(k) for k in range(first, min(keys, first + 1000))}
        )
    if remote.get_run_metric_count(run_id) != keys:
        raise AssertionError(f"the run does not have {keys} metrics")
    get = timed(lambda: remote.get_run_metric_count(run_id), ctx.options.calls, 30)
    found = timed(
        lambda: remote.search(experiment_id, "metrics.m00000 >= 0", ["metrics.m00001 DESC"]),
        ctx.options.calls,
        30,
    )
    print(
        f"  {keys:,} keys {ctx.target}: get_run p50 {get['p50_ms']:.1f} ms, "
        f"search p50 {found['p50_ms']:.1f} ms",
        flush=True,
    )
    return {
        "rows": [
            {"size": keys, "call": "get_run", **get},
            {"size": keys, "call": "search_runs", **found},
        ],
        "detail": {},
    }


# --- artifacts ------------------------------------------------------------------------------------


def _local_dir(ctx: Context, artifact_uri: str) -> Path:
    if artifact_uri.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(artifact_uri).path))
    # MLflow's proxied store: mlflow-artifacts:/<exp>/<run>/artifacts under its destination.
    return ctx.workdir / "mlflow-artifacts" / artifact_uri.split(":", 1)[1].lstrip("/")


def artifact_listing(ctx: Context) -> dict[str, Any]:
    """A directory of N empty files written straight to the store's disk, listed through the
    server page by page (mlgrid: pages of 1,000; MLflow: one answer, it has no pages)."""
    remote, entries = ctx.remote, ctx.options.list_entries
    run_id, artifact_uri = remote.create_run(remote.create_experiment("scale-listing"))
    folder = _local_dir(ctx, artifact_uri) / "many"
    folder.mkdir(parents=True)
    for i in range(entries):
        os.close(os.open(folder / f"f{i:07d}.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    with servers.RssSampler(ctx.server.process.pid) as rss:
        start = time.perf_counter()
        pages = remote.list_dir_pages(run_id, artifact_uri, "many")
        seconds = time.perf_counter() - start
    if sum(pages) != entries:
        raise AssertionError(f"listed {sum(pages)} entries, not {entries}")
    print(f"  list {entries:,} entries {ctx.target}: {seconds:.2f} s", flush=True)
    shutil.rmtree(folder)
    return {
        "rows": [
            {
                "size": entries,
                "seconds": seconds,
                "pages": len(pages),
                "ms_per_page": seconds * 1000 / len(pages),
                "rss_growth_mib": rss.growth_mib,
            }
        ],
        "detail": {},
    }


def _write_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(block)


def artifact_transfer(ctx: Context) -> dict[str, Any]:
    """One large file up and down; the server's memory growth (mlgrid: its artifacts service;
    MLflow: its largest process) while it moves."""
    remote, mib = ctx.remote, ctx.options.artifact_mib
    run_id, artifact_uri = remote.create_run(remote.create_experiment("scale-transfer"))
    source = ctx.workdir / "big.bin"
    _write_file(source, mib)
    match = "artifacts" if _server_name(ctx) == "mlgrid" else None
    rows = []
    with servers.RssSampler(ctx.server.process.pid, match=match) as rss:
        start = time.perf_counter()
        remote.upload(run_id, artifact_uri, source)
        seconds = time.perf_counter() - start
    rows.append(
        {"size": mib, "way": "upload", "seconds": seconds, "mib_s": mib / seconds,
         "rss_growth_mib": rss.growth_mib}
    )  # fmt: skip
    source.unlink()
    target = ctx.workdir / "down"
    target.mkdir(exist_ok=True)
    with servers.RssSampler(ctx.server.process.pid, match=match) as rss:
        start = time.perf_counter()
        local = remote.download(run_id, artifact_uri, "big.bin", target)
        seconds = time.perf_counter() - start
    size = local.stat().st_size
    local.unlink()
    shutil.rmtree(_local_dir(ctx, artifact_uri), ignore_errors=True)
    if size != mib * MIB:
        raise AssertionError(f"downloaded {size} bytes, not {mib * MIB}")
    rows.append(
        {"size": mib, "way": "download", "seconds": seconds, "mib_s": mib / seconds,
         "rss_growth_mib": rss.growth_mib}
    )  # fmt: skip
    for row in rows:
        print(
            f"  {row['way']} {mib:,} MiB {ctx.target}: {row['mib_s']:.0f} MiB/s, "
            f"+{row['rss_growth_mib']:.0f} MiB",
            flush=True,
        )
    return {"rows": rows, "detail": {}}


# --- CPU per log_metric ---------------------------------------------------------------------------


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _cpu_by_pid(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
    return out


def _cpu_since(procs: list[psutil.Process], before: dict[int, float]) -> float:
    """CPU the processes used since ``before`` (a process not in it counts from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in _cpu_by_pid(procs).items())


def _role(proc: psutil.Process) -> str:
    """What a server process is: the service an mlgrid stack child serves (``server tracking``
    …), ``launcher`` for ``mlgrid up`` itself, else its program (MLflow's workers)."""
    try:
        args = proc.cmdline()
    except psutil.NoSuchProcess:
        return "gone"
    if "server" in args and args.index("server") + 1 < len(args):
        served = args[args.index("server") + 1]
        if not served.startswith("-"):
            return served
    if "up" in args:
        return "launcher"
    return Path(args[0]).name if args else "?"


def _cpu_each(procs: list[psutil.Process]) -> dict[psutil.Process, float]:
    return {proc: _cpu([proc]) for proc in procs}


def _backends(db_url: str) -> list[psutil.Process]:
    """The PostgreSQL backend processes serving the target's database."""
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(servers.ADMIN_URL, autocommit=True) as admin:
        pids = [
            pid
            for (pid,) in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        ]
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    return procs


def _log_metric_client(
    ctx: Context, experiment_id: str, python: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    """A client process with a run of its own, warmed up and waiting for ``go``."""
    run_id, _ = ctx.remote.create_run(experiment_id)
    server = _server_name(ctx)
    return subprocess.Popen(
        [python, str(CLIENT_SCRIPT), "log-metric", "--sdk", server, "--uri", ctx.server.uri,
         "--run-id", run_id, "--calls", str(ctx.options.log_metric_calls)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _answer(child: subprocess.Popen[str]) -> dict[str, Any]:
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(RESULT_MARKER):
            answer: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return answer
    raise RuntimeError("a log_metric client gave no result")


def cpu_per_call(ctx: Context) -> dict[str, Any]:
    """Summed CPU (user + system) of the clients, every server process and the database's
    backends over N synchronous ``log_metric`` calls per client, per call. With
    ``cpu_writers`` clients at once, each on its own run, it is what a call costs under that
    concurrency (group commit merging writes, the cores shared), and the calls per second."""
    server = _server_name(ctx)
    python = sys.executable if server == "mlgrid" else str(mlflow_env.python())
    calls = ctx.options.log_metric_calls * ctx.options.cpu_writers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if server == "mlgrid":
        env.update(ctx.options.mlgrid_client_env)
    experiment_id = ctx.remote.create_experiment("scale-cpu")
    children = [
        _log_metric_client(ctx, experiment_id, python, env) for _ in range(ctx.options.cpu_writers)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {server} client did not start")
        tree = servers.process_tree(ctx.server.process.pid)
        backends = _backends(ctx.db_url)
        tree_before, db_before = _cpu_each(tree), _cpu(backends)
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = [_answer(child) for child in children]
        tree_after = _cpu_each(tree)
        # Backends the server opened during the calls (a pool growing) count whole.
        known = {proc.pid for proc in backends}
        late = [proc for proc in _backends(ctx.db_url) if proc.pid not in known]
        db_cpu = _cpu(backends) - db_before + _cpu(late)
        by_role: dict[str, float] = {}
        for proc, after in tree_after.items():
            role = _role(proc)
            by_role[role] = by_role.get(role, 0.0) + after - tree_before[proc]
        server_cpu = sum(by_role.values())
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(60)
    client_cpu = sum(answer["cpu_seconds"] for answer in answers)
    wall = max(answer["wall_seconds"] for answer in answers)
    total_ms = (client_cpu + server_cpu + db_cpu) * 1000 / calls
    row = {
        "size": calls,
        "writers": len(children),
        "cpu_ms_per_call": total_ms,
        "client_ms": client_cpu * 1000 / calls,
        "server_ms": server_cpu * 1000 / calls,
        "database_ms": db_cpu * 1000 / calls,
        "wall_ms_per_call": wall * 1000 / ctx.options.log_metric_calls,
        "calls_per_s": calls / wall,
        "server_ms_by_process": {
            role: cpu * 1000 / calls for role, cpu in sorted(by_role.items()) if cpu > 0
        },
    }
    split = ", ".join(f"{k} {v:.3f}" for k, v in row["server_ms_by_process"].items())
    print(
        f"  cpu/log_metric {ctx.target}, {len(children)} writer(s): {total_ms:.3f} ms (client "
        f"{row['client_ms']:.3f}, server {row['server_ms']:.3f} [{split}], db "
        f"{row['database_ms']:.3f}); wall {row['wall_ms_per_call']:.2f} ms a call, "
        f"{row['calls_per_s']:,.0f} calls/s, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if server == "mlgrid" and len(children) == 1:
        # The same shape of round trip with nothing in it, measured right after: how much of
        # the figure any Python gRPC client and server pay before doing any work.
        floor_calls = max(calls, FLOOR_MIN_CALLS)
        floor = grpc_floor.measure(floor_calls)
        row["grpc_floor_calls"] = floor_calls
        row["grpc_floor_ms"] = floor["total_ms"]
        row["grpc_floor_client_ms"] = floor["client_ms"]
        row["grpc_floor_server_ms"] = floor["server_ms"]
        row["grpc_floor_caller_thread"] = floor["caller_thread"]
        client_kind = "caller's thread" if floor["caller_thread"] else "public API"
        print(
            f"  cpu/bare gRPC round trip (echo, same bytes): {floor['total_ms']:.3f} ms "
            f"(client {floor['client_ms']:.3f} on the {client_kind}, server "
            f"{floor['server_ms']:.3f}); "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        # And what one acknowledged write costs the database alone: a round trip and a durable
        # commit of the smallest row. The two floors together are what the call costs any
        # durable Python gRPC service over PostgreSQL on this machine before its own work.
        commit = db_floor.measure(ctx.db_url, floor_calls)
        row["db_floor_ms"] = commit["total_ms"]
        row["db_floor_client_ms"] = commit["client_ms"]
        row["db_floor_database_ms"] = commit["database_ms"]
        row["db_floor_synchronous_commit"] = commit["synchronous_commit"]
        row["floors_ms"] = floor["total_ms"] + commit["total_ms"]
        print(
            f"  cpu/bare durable commit (one row, synchronous_commit="
            f"{commit['synchronous_commit']}): {commit['total_ms']:.3f} ms (client "
            f"{commit['client_ms']:.3f}, database {commit['database_ms']:.3f}); floors together "
            f"{row['floors_ms']:.3f} ms, mlgrid's own work {total_ms - row['floors_ms']:.3f} ms; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return {"rows": [row], "detail": {"database_backends": len(backends) + len(late)}}


SERVER_PHASES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "search": search,
    "history": history,
    "wide": wide_run,
    "listing": artifact_listing,
    "transfer": artifact_transfer,
    "cpu": cpu_per_call,
}


# --- embedded mode (no server) --------------------------------------------------------------------


def embedded(options: Options, workdir: Path) -> dict[str, Any]:
    """The newcomer's script as a whole process on each SDK's SQLite store, mlgrid and MLflow
    alternating (paired runs), each in a fresh directory. Wall-clock seconds, and the CPU
    seconds (user + system) of each process, which a busy machine inflates far less."""
    _byte_compile_mlgrid()
    seconds: dict[str, list[float]] = {"mlgrid": [], "mlflow": []}
    cpu: dict[str, list[float]] = {"mlgrid": [], "mlflow": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    mlgrid_env = {**env, **options.mlgrid_client_env}
    if options.embedded_async_commit:
        mlgrid_env["MLGRID_STORE_ASYNC_COMMIT"] = "true"
    for rep in range(options.embedded_reps):
        for sdk in ("mlgrid", "mlflow"):
            folder = workdir / f"embedded-{sdk}-{rep}"
            folder.mkdir()
            python = sys.executable if sdk == "mlgrid" else str(mlflow_env.python())
            command = [python, str(CLIENT_SCRIPT), "embedded", "--sdk", sdk,
                       "--uri", f"sqlite:///{folder / 'store.db'}"]  # fmt: skip
            before = os.times()
            start = time.perf_counter()
            subprocess.run(
                command,
                cwd=folder,
                env=mlgrid_env if sdk == "mlgrid" else env,
                check=True,
                capture_output=True,
            )
            seconds[sdk].append(time.perf_counter() - start)
            after = os.times()
            cpu[sdk].append(
                (after.children_user - before.children_user)
                + (after.children_system - before.children_system)
            )
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"  embedded rep {rep + 1}: mlgrid {seconds['mlgrid'][-1]:.2f} s "
            f"(CPU {cpu['mlgrid'][-1]:.2f} s), mlflow {seconds['mlflow'][-1]:.2f} s "
            f"(CPU {cpu['mlflow'][-1]:.2f} s)",
            flush=True,
        )
    ratios = [f / g for g, f in zip(seconds["mlgrid"], seconds["mlflow"], strict=True)]
    cpu_ratios = [f / g for g, f in zip(cpu["mlgrid"], cpu["mlflow"], strict=True)]
    return {
        "rows": [
            {
                "sdk": sdk,
                "p50_s": statistics.median(v),
                "min_s": min(v),
                "runs_s": v,
                "cpu_p50_s": statistics.median(cpu[sdk]),
                "cpu_runs_s": cpu[sdk],
            }
            for sdk, v in seconds.items()
        ],
        "detail": {
            "paired_ratio_p50": statistics.median(ratios),
            "ratios": ratios,
            "cpu_ratio_p50": statistics.median(cpu_ratios),
            "cpu_ratios": cpu_ratios,
        },
    }


def _byte_compile_mlgrid() -> None:
    """Writes mlgrid's .pyc files, as pip does when it installs a wheel (MLflow's venv has
    them): an editable checkout run with PYTHONDONTWRITEBYTECODE would otherwise compile
    every module of mlgrid on every run."""
    import compileall

    import mlgrid
    import mlgrid_services

    for package in (mlgrid, mlgrid_services):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)
