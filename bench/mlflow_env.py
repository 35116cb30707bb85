"""MLflow's own virtual environment (``.venv-mlflow`` at the repository root).

The real MLflow server and client run from there, never from mlgrid's venv: the two packages
would otherwise share (and fight over) dependencies, and the comparison must use MLflow as users
install it. Created on first use, reused afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MLGRID_BENCH_MLFLOW_VENV", ROOT / ".venv-mlflow"))
# SQLAlchemy 2.1 maps postgresql:// to psycopg 3; older ones to psycopg2: install both.
PACKAGES = ["mlflow", "psycopg[binary]", "psycopg2-binary"]


def python() -> Path:
    return VENV / "bin" / "python"


def client_workdir() -> Path:
    """The working directory of MLflow's client workers: it holds only a ``bench`` link to this
    package. Run from the repository root, they would find ``mlgrid.egg-info`` there (the dev
    install's metadata) through the current directory on ``sys.path``, and MLflow would try to
    load mlgrid's plugin entry points from it, warning "No module named 'mlgrid'" in every
    process."""
    workdir = VENV / "client-workdir"
    link = workdir / "bench"
    if not link.is_symlink():
        workdir.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT / "bench", target_is_directory=True)
    return workdir


def installed_version() -> str | None:
    """MLflow's version in the venv, or None when the venv is missing or incomplete."""
    if not (VENV / "bin" / "mlflow").exists():
        return None
    probe = subprocess.run(
        [str(python()), "-c", "import mlflow, psycopg, psycopg2; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure() -> str:
    """Creates the venv and installs MLflow when needed; returns MLflow's version."""
    version = installed_version()
    if version:
        return version
    print(f"installing {' '.join(PACKAGES)} into {VENV} (once) ...", file=sys.stderr, flush=True)
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *PACKAGES], check=True)
    version = installed_version()
    if not version:
        raise SystemExit(f"MLflow did not install into {VENV}; see pip's output above")
    return version
