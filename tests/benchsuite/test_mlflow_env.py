"""MLflow's client workers run where the repository's own package metadata is out of sight."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import mlflow_env

# Python without this venv's site-packages, like MLflow's own venv: what it can see of mlgrid
# comes only from the directory it runs in.
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
PROBE = (
    "import importlib.metadata as m, bench.phases;"
    "print(any(d.metadata['Name'] == 'mlgrid' for d in m.distributions()))"
)


def _sees_mlgrid(cwd: Path) -> bool:
    done = subprocess.run(
        [str(BASE_PYTHON), "-c", PROBE], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip() == "True"


def test_the_workers_directory_imports_bench_but_not_mlgrids_metadata(tmp_path, monkeypatch):
    # A checkout as the dev install leaves it: the package, and mlgrid's metadata beside it.
    root = tmp_path / "repo"
    (root / "mlgrid.egg-info").mkdir(parents=True)
    (root / "mlgrid.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: mlgrid\n")
    (root / "bench").symlink_to(mlflow_env.ROOT / "bench", target_is_directory=True)
    monkeypatch.setattr(mlflow_env, "ROOT", root)
    monkeypatch.setattr(mlflow_env, "VENV", tmp_path / "venv")

    workdir = mlflow_env.client_workdir()

    assert sorted(p.name for p in workdir.iterdir()) == ["bench"]
    assert mlflow_env.client_workdir() == workdir  # a second call reuses the link
    assert _sees_mlgrid(root)  # where MLflow would try to load mlgrid's plugins
    assert not _sees_mlgrid(workdir)
