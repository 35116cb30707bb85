"""The scale tier's Markdown table: one line per phase and size, mlgrid beside MLflow."""

from __future__ import annotations

from typing import Any

#: phase -> (what a row measures, the row's figure, its unit, the target for mlgrid)
FIGURES: dict[str, tuple[str, str, str, str]] = {
    "search": ("search_runs, param filter + metric order, page of 100 (p50)", "p50_ms", "ms",
               "≤ 50 ms at 1M"),
    "history": ("metric history streamed", "seconds", "s", "≤ 3 s at 10M"),
    "wide": ("run with many metric keys (p50)", "p50_ms", "ms", "< 100 ms"),
    "listing": ("artifact directory listed page by page", "seconds", "s", "flat memory"),
    "transfer": ("artifact transfer", "mib_s", "MiB/s", "flat memory"),
    "cpu": ("CPU per log_metric (client+server+database)", "cpu_ms_per_call", "ms", "≤ 0.4 ms"),
}  # fmt: skip


def _label(phase: str, row: dict[str, Any]) -> str:
    size = f"{row['size']:,}"
    if phase == "search":
        return f"{size} runs"
    if phase == "history":
        return f"{size} points, {row['read']} read"
    if phase == "wide":
        return f"{size} keys, {row['call']}"
    if phase == "listing":
        return f"{size} entries"
    if phase == "transfer":
        return f"{size} MiB {row['way']}"
    writers = row.get("writers", 1)
    return f"{size} calls" if writers == 1 else f"{size} calls, {writers} writers at once"


def _cell(phase: str, row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    _, key, unit, _ = FIGURES[phase]
    text = f"{row[key]:,.3f} {unit}" if phase == "cpu" else f"{row[key]:,.1f} {unit}"
    if "rss_growth_mib" in row:
        text += f" (+{row['rss_growth_mib']:,.0f} MiB RSS)"
    if phase == "cpu":
        text += (
            f" (client {row['client_ms']:.3f} / server {row['server_ms']:.3f} / "
            f"db {row['database_ms']:.3f})"
        )
        if row.get("writers", 1) > 1:
            text += f"; {row['calls_per_s']:,.0f} calls/s"
        if "grpc_floor_ms" in row:
            text += f"; bare gRPC round trip {row['grpc_floor_ms']:.3f} {unit}"
        if "db_floor_ms" in row:
            text += (
                f" + bare durable commit {row['db_floor_ms']:.3f} {unit} = floors "
                f"{row['floors_ms']:.3f} {unit}"
            )
    return text


def markdown(document: dict[str, Any]) -> str:
    results = document["results"]
    lines = [
        f"Scale tier, {document['started']}; `{document['command']}`",
        f"load average before/after: {_load(document['machine'].get('load_before'))} / "
        f"{_load(document['machine'].get('load_after'))}, {document['machine']['cpus']} CPUs",
        "",
        "| measure | size | mlgrid | MLflow | target |",
        "|---|---|---|---|---|",
    ]
    for phase, (title, _, _, goal) in FIGURES.items():
        grid = results.get("mlgrid", {}).get(phase, {})
        flow = results.get("mlflow", {}).get(phase, {})
        if not grid and not flow:
            continue
        for side in (grid, flow):
            if "error" in side:
                lines.append(f"| {title} | — | error: {side['error']} | | |")
        flow_rows = {_label(phase, r): r for r in flow.get("rows", [])}
        grid_rows = {_label(phase, r): r for r in grid.get("rows", [])}
        for label in dict.fromkeys([*grid_rows, *flow_rows]):
            lines.append(
                f"| {title} | {label} | {_cell(phase, grid_rows.get(label))} | "
                f"{_cell(phase, flow_rows.get(label))} | {goal} |"
            )
    embedded = results.get("embedded")
    if embedded:
        by_sdk = {r["sdk"]: r for r in embedded["rows"]}
        lines.append(
            "| embedded script (1,000 log_metric + log_metrics of 100), whole process, p50 | "
            f"{len(by_sdk['mlgrid']['runs_s'])} paired runs | {by_sdk['mlgrid']['p50_s']:.2f} s | "
            f"{by_sdk['mlflow']['p50_s']:.2f} s | ≥ 10 times faster (now "
            f"{embedded['detail']['paired_ratio_p50']:.1f} times) |"
        )
        if "cpu_p50_s" in by_sdk["mlgrid"]:
            lines.append(
                "| the same, CPU seconds (user + system) of the process, p50 | | "
                f"{by_sdk['mlgrid']['cpu_p50_s']:.2f} s | {by_sdk['mlflow']['cpu_p50_s']:.2f} s | "
                f"{embedded['detail']['cpu_ratio_p50']:.1f} times |"
            )
    for note in document.get("notes", []):
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def _load(load: Any) -> str:
    return ", ".join(f"{x:.1f}" for x in load) if load else "?"
