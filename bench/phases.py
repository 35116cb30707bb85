"""The phases of the benchmark, their sizes, and the targets the issues set for them.

Standard library only: imported by the workload in both venvs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Phase groups, in run order. "startup" is measured by the controller, not by a worker.
GROUPS: tuple[str, ...] = ("tracking", "artifacts", "registry", "serving")


@dataclass(frozen=True)
class Scale:
    """How big each phase is. ``FULL`` is the workload of the issues; ``QUICK`` a smoke run."""

    runs: int = 500  # runs created, each with 5 params and 3 tags
    log_metric_calls: int = 2_000  # single log_metric calls
    batches: int = 100  # log_batch calls ...
    batch_size: int = 1_000  # ... of this many metric points (MLflow's per-call limit)
    search_runs: int = 5_000  # runs the search phase searches over
    search_reps: int = 30  # timed searches
    search_max_results: int = 100  # page size of each search (see docs/benchmarks.md)
    setup_procs: int = 8  # parallel client processes that create the search runs (untimed)
    concurrent_procs: int = 8  # processes logging at once ...
    # ... each making log_metric calls for this long: both targets run for the same time, so
    # the ramp (children starting and stopping) is the same small share of each figure.
    concurrent_seconds: float = 10.0
    big_file_mib: int = 200  # the large artifact, up and down
    small_files: int = 500  # files in one log_artifacts call ...
    small_file_kib: int = 4  # ... of this size
    list_reps: int = 30  # timed listings of that directory
    versions: int = 1_000  # model versions created for one registered model
    version_search_reps: int = 30  # timed search_model_versions calls
    alias_reps: int = 100  # timed get_model_version_by_alias calls
    warmup: int = 5  # untimed calls before each latency phase

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


FULL = Scale()
QUICK = Scale(
    runs=20,
    log_metric_calls=50,
    batches=5,
    search_runs=100,
    search_reps=5,
    search_max_results=20,
    setup_procs=2,
    concurrent_procs=4,
    concurrent_seconds=1.0,
    big_file_mib=8,
    small_files=50,
    list_reps=5,
    versions=20,
    version_search_reps=5,
    alias_reps=10,
    warmup=2,
)


@dataclass(frozen=True)
class Phase:
    """One measured figure."""

    id: str
    group: str
    title: str
    unit: str
    #: True when a larger figure is better (a rate); False for latencies, durations, sizes.
    higher_is_better: bool
    #: Absolute target for mlgrid ("≥ 250"), or None.
    target: float | None = None
    #: Relative target: mlgrid at least this many times better than MLflow (TCP_NODELAY on).
    target_factor: float | None = None
    #: The MLflow (TCP_NODELAY on) figure the issue quotes for this machine, for reference.
    issue_mlflow: float | None = None
    #: Measured by the controller (server side) rather than by the client worker.
    controller: bool = False
    #: Only meaningful for mlgrid (e.g. the artifacts service's own memory).
    mlgrid_only: bool = False

    @property
    def client_measured(self) -> bool:
        """Measured by the client worker, so it differs between clients of the same server."""
        return not self.controller

    def target_text(self) -> str:
        if self.target is not None:
            return f"{'≥' if self.higher_is_better else '≤'} {_num(self.target)} {self.unit}"
        if self.target_factor is not None:
            return f"≥ {_num(self.target_factor)}x MLflow"
        return ""


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:g}"


PHASES: tuple[Phase, ...] = (
    Phase(
        "create_runs",
        "tracking",
        "create run + 5 params + 3 tags, sequential",
        "runs/s",
        True,
        target=250,
        issue_mlflow=42,
    ),
    Phase(
        "log_metric", "tracking", "single log_metric, p50", "ms", False, target=2, issue_mlflow=7.4
    ),
    Phase(
        "log_batch",
        "tracking",
        "log_batch of 1,000 points",
        "points/s",
        True,
        target=200_000,
        issue_mlflow=6_550,
    ),
    Phase(
        "metric_history",
        "tracking",
        "full history of 100,000 points",
        "s",
        False,
        target=0.5,
        issue_mlflow=5.4,
    ),
    Phase(
        "search_runs",
        "tracking",
        "search over 5,000 runs, p50",
        "ms",
        False,
        target=10,
        issue_mlflow=51,
    ),
    Phase(
        "concurrent_logging",
        "tracking",
        "8 processes logging at once",
        "calls/s",
        True,
        target=1_500,
        issue_mlflow=166,
    ),
    Phase(
        "startup_seconds",
        "tracking",
        "start to healthy",
        "s",
        False,
        target=3,
        issue_mlflow=15,
        controller=True,
    ),
    Phase(
        "startup_processes",
        "tracking",
        "processes when healthy",
        "procs",
        False,
        issue_mlflow=15,
        controller=True,
    ),
    Phase(
        "startup_rss",
        "tracking",
        "summed RSS when healthy",
        "MiB",
        False,
        target=400,
        issue_mlflow=3_000,
        controller=True,
    ),
    Phase(
        "artifact_upload",
        "artifacts",
        "200 MiB file up",
        "MiB/s",
        True,
        target=600,
        issue_mlflow=255,
    ),
    Phase(
        "artifact_download",
        "artifacts",
        "200 MiB file down",
        "MiB/s",
        True,
        target=600,
        issue_mlflow=296,
    ),
    Phase(
        "artifact_rss_growth",
        "artifacts",
        "artifacts service peak RSS growth",
        "MiB",
        False,
        target=64,
        controller=True,
        mlgrid_only=True,
    ),
    Phase(
        "small_files",
        "artifacts",
        "500 files of 4 KiB, one log_artifacts",
        "files/s",
        True,
        target=2_000,
        issue_mlflow=284,
    ),
    Phase(
        "list_artifacts",
        "artifacts",
        "list the 500-entry directory, p50",
        "ms",
        False,
        target=5,
        issue_mlflow=52,
    ),
    Phase(
        "create_versions",
        "registry",
        "create 1,000 versions of one model",
        "versions/s",
        True,
        target_factor=5,
    ),
    Phase(
        "search_versions", "registry", "search versions by name, p50", "ms", False, target_factor=5
    ),
    Phase("get_by_alias", "registry", "get version by alias, p50", "ms", False, target_factor=5),
)

#: Models serving (bench/serving.py): `mlgrid models serve` against `mlflow models serve` on
#: one sklearn model; measured by the controller, without any tracking server.
SERVING_PHASES: tuple[Phase, ...] = (
    Phase(
        "serve_single_rps",
        "serving",
        "serve 1-row requests",
        "req/s",
        True,
        target_factor=3,
        controller=True,
    ),
    Phase("serve_single_p50", "serving", "serve 1-row requests, p50", "ms", False, controller=True),
    Phase(
        "serve_single_p99",
        "serving",
        "serve 1-row requests, p99",
        "ms",
        False,
        target_factor=1,
        controller=True,
    ),
    Phase("serve_batch_rps", "serving", "serve 1,000-row requests", "req/s", True, controller=True),
    Phase(
        "serve_batch_p50", "serving", "serve 1,000-row requests, p50", "ms", False, controller=True
    ),
    Phase(
        "serve_batch_p99", "serving", "serve 1,000-row requests, p99", "ms", False, controller=True
    ),
)
PHASES = PHASES + SERVING_PHASES

BY_ID: dict[str, Phase] = {phase.id: phase for phase in PHASES}

#: Issue #11's targets for the unmodified `mlflow` client on mlgrid, on every tracking phase a
#: client measures: this many times better than the same client against MLflow's server
#: (TCP_NODELAY on), through the plugin and through the REST port.
MLFLOW_CLIENT_FACTORS: dict[str, float] = {"mlgrid-plugin": 5.0, "mlgrid-rest": 2.0}


def has_client_factor(phase: Phase) -> bool:
    return phase.group == "tracking" and phase.client_measured


def select(spec: str | None) -> list[Phase]:
    """Phases named by a comma-separated list of groups and/or phase ids (None: all)."""
    if not spec:
        return list(PHASES)
    wanted: set[str] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item in GROUPS:
            wanted.update(p.id for p in PHASES if p.group == item)
        elif item in BY_ID:
            wanted.add(item)
        else:
            known = ", ".join([*GROUPS, *BY_ID])
            raise ValueError(f"unknown phase {item!r} in --phases; known: {known}")
    return [p for p in PHASES if p.id in wanted]
