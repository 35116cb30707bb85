"""Runs mypy over the hand-written packages under their import names.

The tree keeps ``services/`` where the architecture puts it, but it is imported as
``mlgrid_services`` (see setup.py). mypy cannot see through setuptools' editable-install
finder, so this links ``.typecheck/mlgrid_services`` to ``services/`` and points mypy there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    shadow = ROOT / ".typecheck"
    shadow.mkdir(exist_ok=True)
    link = shadow / "mlgrid_services"
    if not link.is_symlink():
        link.symlink_to(ROOT / "services", target_is_directory=True)
    env = dict(os.environ, MYPYPATH=f"{shadow}{os.pathsep}{ROOT / 'sdk'}")
    command = [sys.executable, "-m", "mypy", "-p", "mlgrid", "-p", "mlgrid_services"]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
