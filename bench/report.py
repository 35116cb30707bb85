"""The results tables: each phase's figure per target, mlgrid's ratio to MLflow, the target.

The first table compares mlgrid's SDK on ``mlgrid up`` with the MLflow client on MLflow's server;
the second keeps the client fixed (the unmodified ``mlflow`` package) and compares MLflow's server
with mlgrid reached through the plugin and through the REST port.

A ratio is "how many times better mlgrid is": mlgrid / MLflow for rates, MLflow / mlgrid for
latencies, durations and sizes; above 1 means mlgrid wins.

The third table (when ``mlgrid-auth`` ran) sets mlgrid with auth on beside mlgrid with auth off
on the tracking phases: the issue allows auth to cost them at most :data:`AUTH_MAX_LOSS`.
"""

from __future__ import annotations

from typing import Any

from bench.phases import MLFLOW_CLIENT_FACTORS, Phase, has_client_factor
from bench.servers import TARGETS

Results = dict[str, dict[str, Any]]  # target -> phase id -> {"value", "detail"} | {"error"}
#: The most auth may cost a tracking phase (issue #13): 10 % of its rate, or 10 % more time.
AUTH_MAX_LOSS = 0.10


def value(results: Results, target: str, phase: Phase) -> float | None:
    entry = results.get(target, {}).get(phase.id)
    if not entry or "value" not in entry:
        return None
    figure: float = entry["value"]
    return figure


def ratio(phase: Phase, mlgrid: float | None, mlflow: float | None) -> float | None:
    if mlgrid is None or mlflow is None or mlgrid <= 0 or mlflow <= 0:
        return None
    return mlgrid / mlflow if phase.higher_is_better else mlflow / mlgrid


def met(phase: Phase, results: Results) -> str:
    """ "yes"/"no" against the phase's target, "" without a target, "n/a" without the figures."""
    mine = value(results, "mlgrid", phase)
    if phase.target is not None:
        if mine is None:
            return "n/a"
        ok = mine >= phase.target if phase.higher_is_better else mine <= phase.target
        return "yes" if ok else "no"
    if phase.target_factor is not None:
        # Against MLflow's TCP_NODELAY variant when it was measured (the tracking phases),
        # else its default (the serving phases: MLflow's model server sets TCP_NODELAY).
        theirs = value(results, "mlflow-nodelay", phase)
        if theirs is None:
            theirs = value(results, "mlflow", phase)
        factor = ratio(phase, mine, theirs)
        return "n/a" if factor is None else ("yes" if factor >= phase.target_factor else "no")
    return ""


def fmt(figure: float | None) -> str:
    if figure is None:
        return "-"
    if figure >= 100:
        return f"{figure:,.0f}"
    if figure >= 10:
        return f"{figure:.1f}"
    return f"{figure:.2f}" if figure >= 0.1 else f"{figure:.3f}"


def fmt_ratio(figure: float | None) -> str:
    return "-" if figure is None else f"{figure:.1f}x"


def rows(phases: list[Phase], results: Results, targets: list[str]) -> list[list[str]]:
    """The main table: MLflow's server(s) and mlgrid with its own SDK (other targets ignored)."""
    targets = [t for t in targets if TARGETS[t].server == "mlflow" or t == "mlgrid"]
    mlflows = [t for t in targets if t != "mlgrid"]
    header = ["phase", "unit", *(TARGETS[t].title for t in targets)]
    if "mlgrid" in targets:
        header += [f"vs {TARGETS[t].title}" for t in mlflows] + ["target", "met?"]
    table = [header]
    for phase in phases:
        row = [phase.title, phase.unit]
        for target in targets:
            entry = results.get(target, {}).get(phase.id, {})
            row.append("error" if "error" in entry else fmt(value(results, target, phase)))
        if "mlgrid" in targets:
            mine = value(results, "mlgrid", phase)
            row += [fmt_ratio(ratio(phase, mine, value(results, t, phase))) for t in mlflows]
            row += [phase.target_text(), met(phase, results)]
        table.append(row)
    return table


def reference_mlflow(targets: list[str]) -> str | None:
    """The MLflow server the factor targets compare with: TCP_NODELAY on when it was measured."""
    return next((t for t in ("mlflow-nodelay", "mlflow") if t in targets), None)


def client_rows(phases: list[Phase], results: Results, targets: list[str]) -> list[list[str]]:
    """The unmodified ``mlflow`` client on every server: MLflow's, and mlgrid's plugin and REST
    port (issue #11's targets). Empty when neither mlgrid way was measured."""
    ways = [t for t in MLFLOW_CLIENT_FACTORS if t in targets]
    if not ways:
        return []
    mlflows = [t for t in targets if TARGETS[t].server == "mlflow"]
    reference = reference_mlflow(mlflows)
    header = ["phase", "unit", *(TARGETS[t].title for t in [*mlflows, *ways])]
    if reference:
        header += [f"{TARGETS[w].title} vs {TARGETS[reference].title}" for w in ways]
        header += ["target"] + [f"met? ({TARGETS[w].way})" for w in ways]
    table = [header]
    for phase in (p for p in phases if p.client_measured and not p.mlgrid_only):
        row = [phase.title, phase.unit]
        for target in [*mlflows, *ways]:
            entry = results.get(target, {}).get(phase.id, {})
            row.append("error" if "error" in entry else fmt(value(results, target, phase)))
        if reference:
            theirs = value(results, reference, phase)
            factors = [ratio(phase, value(results, w, phase), theirs) for w in ways]
            row += [fmt_ratio(f) for f in factors]
            if has_client_factor(phase):
                row.append(", ".join(f"≥ {MLFLOW_CLIENT_FACTORS[w]:g}x" for w in ways))
                row += [
                    "n/a" if f is None else ("yes" if f >= MLFLOW_CLIENT_FACTORS[w] else "no")
                    for w, f in zip(ways, factors, strict=True)
                ]
            else:
                row += [""] * (1 + len(ways))
        table.append(row)
    return table


def auth_loss(phase: Phase, off: float | None, on: float | None) -> float | None:
    """What turning auth on cost ``phase``: the share of its rate lost, or the share of time
    added (negative when auth on measured better, i.e. noise)."""
    if off is None or on is None or off <= 0 or on <= 0:
        return None
    return 1 - on / off if phase.higher_is_better else on / off - 1


def cpu_seconds(results: Results, target: str, phase: Phase) -> float | None:
    """Client + server CPU seconds the phase cost (bench/cpu.py), None when not measured."""
    entry = results.get(target, {}).get(phase.id) or {}
    spent = entry.get("detail", {}).get("cpu_seconds")
    return None if not spent else float(spent["client"] + spent["server"])


def auth_cpu_cost(pair: Results, phase: Phase) -> float | None:
    """The share of CPU (client and server) auth on added to the phase's same work."""
    off, on = cpu_seconds(pair, "mlgrid", phase), cpu_seconds(pair, "mlgrid-auth", phase)
    return None if off is None or on is None or off <= 0 else on / off - 1


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def auth_rows(
    phases: list[Phase],
    results: Results,
    targets: list[str],
    rounds: list[dict[str, Any]] | None = None,
) -> list[list[str]]:
    """mlgrid with auth off and on, tracking phases (empty unless both ran).

    With ``rounds`` (bench/cli.py ``auth_rounds``: each a pair of runs in the same minutes)
    the figures are the medians over the rounds, and the cost is the median of the rounds'
    paired costs, each of which is shown: one round skewed by other work on the machine then
    moves the verdict no more than it should."""
    if "mlgrid" not in targets or "mlgrid-auth" not in targets:
        return []
    pairs: list[Results] = (
        [{t: r.get(t, {}) for t in ("mlgrid", "mlgrid-auth")} for r in rounds]
        if rounds and len(rounds) > 1
        else [results]
    )
    header = ["phase", "unit", TARGETS["mlgrid"].title, TARGETS["mlgrid-auth"].title]
    if len(pairs) > 1:
        header.append(f"cost in each of {len(pairs)} rounds")
    tracking = [p for p in phases if p.group == "tracking"]
    with_cpu = any(auth_cpu_cost(pair, p) is not None for pair in pairs for p in tracking)
    table = [[*header, "cost of auth", f"≤ {AUTH_MAX_LOSS:.0%}?"]]
    if with_cpu:
        table[0].append("CPU cost")
    for phase in tracking:
        row = [phase.title, phase.unit]
        for target in ("mlgrid", "mlgrid-auth"):
            if any("error" in pair.get(target, {}).get(phase.id, {}) for pair in pairs):
                row.append("error")
                continue
            figures = [v for pair in pairs if (v := value(pair, target, phase)) is not None]
            row.append(fmt(_median(figures)) if figures else fmt(None))
        losses = [
            auth_loss(phase, value(pair, "mlgrid", phase), value(pair, "mlgrid-auth", phase))
            for pair in pairs
        ]
        if len(pairs) > 1:
            row.append(", ".join("-" if x is None else f"{x:+.1%}" for x in losses))
        known = [x for x in losses if x is not None]
        loss = _median(known) if known and len(known) == len(losses) else None
        row.append("-" if loss is None else f"{loss:+.1%}")
        if phase.controller:  # start-up figures: shown, but the limit is on the calls
            row.append("")
        else:
            row.append("n/a" if loss is None else ("yes" if loss <= AUTH_MAX_LOSS else "no"))
        if with_cpu:
            costs = [auth_cpu_cost(pair, phase) for pair in pairs]
            known = [x for x in costs if x is not None]
            row.append(f"{_median(known):+.1%}" if known and len(known) == len(costs) else "-")
        table.append(row)
    return table


def render_all(
    phases: list[Phase],
    results: Results,
    targets: list[str],
    markdown: bool = False,
    auth_rounds: list[dict[str, Any]] | None = None,
) -> str:
    """The main table, then (when the plugin or REST way was measured) the mlflow-client one."""
    parts = []
    client = client_rows(phases, results, targets)
    if "mlgrid" in targets or not client:  # MLflow's columns alone are in the client table
        parts.append(render(rows(phases, results, targets), markdown))
    if client:
        parts.append("The unmodified mlflow client on each server:\n\n" + render(client, markdown))
    auth = auth_rows(phases, results, targets, auth_rounds)
    if len(auth) > 1:
        rounds = len(auth_rounds or ()) if len(auth_rounds or ()) > 1 else 0
        how = f", median of {rounds} alternating rounds" if rounds else ""
        parts.append(
            "mlgrid with auth off and on (its SDK as a user that is not an admin, with an access "
            f"token{how}):\n\n" + render(auth, markdown)
        )
    return "\n\n".join(parts)


def render(table: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
        lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = []
    for n, row in enumerate(table):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def errors(results: Results) -> list[str]:
    return [
        f"{target} {phase}: {entry['error']}"
        for target, by_phase in results.items()
        for phase, entry in by_phase.items()
        if "error" in entry
    ]
