"""docs/mlflow-endpoints.md's plugin column: every row says how the plugin covers the endpoint,
and every test it names exists in this directory."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = HERE.parent.parent / "docs" / "mlflow-endpoints.md"
NAMED_TEST = re.compile(r"`tests/mlflow_plugin/(?P<file>test_\w+\.py)::(?P<test>test_\w+)`")


def plugin_cells() -> dict[str, str]:
    cells: dict[str, str] = {}
    for line in TABLE.read_text().splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) == 5 and parts[0] not in ("RPC", "") and not set(parts[0]) <= {"-"}:
            cells[f"{parts[0]} {parts[1]}"] = parts[4]
    return cells


def functions_in(file: str) -> set[str]:
    tree = ast.parse((HERE / file).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_endpoint_row_fills_the_plugin_column():
    cells = plugin_cells()
    assert len(cells) > 150
    assert [row for row, cell in cells.items() if not cell] == []


def test_every_test_the_plugin_column_names_exists():
    named = [NAMED_TEST.search(cell) for cell in plugin_cells().values()]
    found = [m for m in named if m]
    assert len(found) >= 60
    missing = [m.group(0) for m in found if m.group("test") not in functions_in(m.group("file"))]
    assert missing == []
