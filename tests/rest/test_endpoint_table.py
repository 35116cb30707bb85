"""docs/mlflow-endpoints.md against MLflow's endpoint list (../shared/mlflow-rest-endpoints.tsv):
every endpoint is in the table, and the REST port answers each as the table says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import call

ROOT = Path(__file__).resolve().parents[2]
TSV = ROOT.parent / "shared" / "mlflow-rest-endpoints.tsv"
TABLE = ROOT / "docs" / "mlflow-endpoints.md"


def _endpoints() -> list[tuple[str, str, str]]:
    """(service section, rpc, "METHOD path | METHOD path") of every endpoint in the .tsv."""
    rows, section = [], ""
    for line in TSV.read_text().splitlines():
        if line.startswith("### "):
            section = line[4:]
        elif line and not line.startswith("#"):
            rpc, methods, _visibility = line.split("\t")
            rows.append((section, rpc, methods))
    return rows


def _table() -> dict[tuple[str, str], str]:
    """(rpc, methods as the .tsv spells them) -> the REST status column of the docs table."""
    found = {}
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`"):
            methods = cells[1].strip("`").replace("`, `", " | ")
            found[(cells[0], methods)] = cells[2]
    return found


def test_the_table_lists_every_mlflow_endpoint() -> None:
    table = _table()
    missing = [
        f"{rpc} ({methods})" for _, rpc, methods in _endpoints() if (rpc, methods) not in table
    ]
    assert not missing, f"docs/mlflow-endpoints.md lacks: {', '.join(missing)}"
    assert len(table) == len(_endpoints())


def _calls(methods: str) -> list[tuple[str, str]]:
    """(method, request path) for each way in; path templates filled with sample values."""
    out = []
    for spec in methods.split(" | "):
        method, path = spec.split(" ", 1)
        path = re.sub(r"^(\d\.\d+)(mlflow/)", r"\1/\2", path)  # the .tsv's "2.0mlflow/…"
        path = re.sub(r"^2\.\d+/", "2.0/", path) if "mlflow/metrics" in path else path
        path = re.sub(r"\{[^}]+\}", "sample-id", path)
        path = re.sub(r"<path:[^>]+>", "table-check/file.txt", path)
        out.append((method, f"/api/{path}"))
    return out


@pytest.mark.parametrize(("section", "rpc", "methods"), _endpoints(), ids=lambda v: str(v)[:40])
def test_every_mlflow_endpoint_is_served_or_not_implemented(
    rest_url: str, section: str, rpc: str, methods: str
) -> None:
    status = _table()[(rpc, methods)]
    for method, path in _calls(methods):
        for prefix in ("/api/", "/ajax-api/"):
            full = prefix + path[len("/api/") :]
            response = call(
                rest_url,
                method,
                full,
                None if method == "GET" else {},
                raw=b"" if method == "PUT" else None,
            )
            code = (
                response.json().get("error_code")
                if response.headers.get("Content-Type", "").startswith("application/json")
                else None
            )
            if status.startswith("NOT_IMPLEMENTED"):
                assert (response.status_code, code) == (501, "NOT_IMPLEMENTED"), (
                    method,
                    full,
                    response.text,
                )
            else:
                assert response.status_code != 405, (method, full, response.text)
                assert code != "ENDPOINT_NOT_FOUND", (method, full, response.text)
                if "NOT_IMPLEMENTED when" not in status:
                    assert code != "NOT_IMPLEMENTED", (method, full, response.text)
