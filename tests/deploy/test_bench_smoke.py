"""The benchmark's mlgrid side, scaled down, against a real ``mlgrid up`` on PostgreSQL.

The MLflow side needs its own venv (created by the first ``make bench``), so it is not run here;
the workload code it would run is the same module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.phases import PHASES  # noqa: E402


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_quick_bench_measures_every_phase_of_mlgrid(tmp_path: Path, postgres_url: str) -> None:
    # postgres_url: the session's PostgreSQL must be up; the bench makes its own fresh database.
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--targets", "mlgrid", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(output.read_text())["results"]["mlgrid"]
    figures = {phase.id: results.get(phase.id, {}).get("value") for phase in PHASES}
    failed = {pid: results.get(pid) for pid, value in figures.items() if not value or value <= 0}
    assert not failed, f"phases without a positive figure: {failed}"
    # The printed table names every phase and the mlgrid column.
    for phase in PHASES:
        assert phase.title in done.stdout
    # Sizes come from the quick scale: the search returned the page it asked for.
    assert results["search_runs"]["detail"]["returned"] > 0
    assert results["metric_history"]["detail"]["points"] == 5_000
