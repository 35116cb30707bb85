"""The protobuf contracts: stubs in sync with the protos, and buf lint clean."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"


def _generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in (root / "mlgrid" / "api").rglob("*") if p.is_file()}


def test_checked_in_stubs_match_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = _generated_files(tmp_path)
    checked_in = {p for p in _generated_files(ROOT / "sdk") if "__pycache__" not in p.parts}
    assert fresh == checked_in, "stub files differ from the protos: run `make proto`"
    drifted = [
        str(p)
        for p in sorted(fresh)
        if not filecmp.cmp(tmp_path / p, ROOT / "sdk" / p, shallow=False)
    ]
    assert not drifted, f"stale stubs (run `make proto`): {drifted}"


@pytest.mark.skipif(
    not BUF.exists() and shutil.which("npm") is None,
    reason="buf comes from npm (tools/package.json) and npm is not installed",
)
def test_protos_are_buf_lint_clean() -> None:
    if not BUF.exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=ROOT / "tools", check=True
        )
    result = subprocess.run([str(BUF), "lint"], cwd=ROOT / "protos", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
