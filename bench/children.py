"""Client processes the workload fans out to: parallel setup and the concurrent-logging phase.

Each child is ``python -m bench.worker <command>`` in the same interpreter (so in the same venv,
with the same SDK) as the worker that starts it. Standard library only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

#: The line a child prints before its JSON answer (anything an SDK logs is ignored).
RESULT_MARKER = "BENCH-RESULT "
READY = "READY"


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.worker", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _answer(child: subprocess.Popen[str], what: str) -> Any:
    """Reads the child's result line and waits for it to exit; raises if it failed."""
    assert child.stdout is not None
    payload = None
    for line in child.stdout:
        if line.startswith(RESULT_MARKER):
            payload = json.loads(line[len(RESULT_MARKER) :])
    code = child.wait()
    if code != 0 or payload is None:
        raise RuntimeError(f"{what} child exited with {code} and no result")
    return payload


def make_search_runs_in_parallel(
    sdk: str, uri: str, experiment_id: str, total: int, procs: int
) -> None:
    """Creates ``total`` search-fixture runs with ``procs`` client processes (untimed setup)."""
    share = -(-total // procs)
    kids = []
    for first in range(0, total, share):
        count = min(share, total - first)
        args = ["setup-search", "--sdk", sdk, "--uri", uri, "--experiment-id", experiment_id]
        kids.append(_spawn([*args, "--first", str(first), "--count", str(count)]))
    for kid in kids:
        _answer(kid, "setup-search")


def log_concurrently(
    sdk: str, uri: str, run_ids: list[str], seconds: float
) -> list[dict[str, Any]]:
    """One child per run; each connects and warms up, then all start on one signal and log for
    ``seconds``.

    Returns each child's ``{"start", "end", "calls"}`` (wall-clock seconds, calls completed).
    """
    kids = [
        _spawn(
            ["log-loop", "--sdk", sdk, "--uri", uri, "--run-id", run_id, "--seconds", str(seconds)]
        )
        for run_id in run_ids
    ]
    for kid in kids:  # every child has imported its SDK and made one call
        assert kid.stdout is not None
        line = "?"
        while line and line.strip() != READY:  # skip anything the SDK printed first
            line = kid.stdout.readline()
        if not line:
            for other in kids:
                other.kill()
            raise RuntimeError(f"log-loop child exited with {kid.wait()} before it was ready")
    for kid in kids:
        assert kid.stdin is not None
        kid.stdin.write("go\n")
        kid.stdin.flush()
    return [_answer(kid, "log-loop") for kid in kids]
