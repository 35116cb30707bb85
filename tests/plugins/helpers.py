"""Runs ``mlgrid plugin serve`` as a real subprocess and waits for its ready line."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlgrid_services.stack import READY, parse_line

STARTUP_TIMEOUT = 60.0


def mlgrid_command() -> list[str]:
    script = Path(sys.executable).parent / "mlgrid"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlgrid.cli.main"]


class PluginProcess:
    """``mlgrid plugin serve TARGET --scheme SCHEME [args]`` on port 0."""

    def __init__(self, target: str, scheme: str, *args: str, env: dict[str, str] | None = None):
        self.command = [*mlgrid_command(), "plugin", "serve", target, "--scheme", scheme, *args]
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MLGRID_LOG_LEVEL": "WARNING", **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self.address = ""
        self.ready: dict[str, object] = {}

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> PluginProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            parsed = parse_line(line)
            if parsed is not None and parsed[0] == READY:
                self.ready = parsed[1]
                self.address = str(self.ready["address"])
                return self
        self.kill()
        raise RuntimeError(
            f"{' '.join(self.command)} did not become ready (exit {self.process.poll()}):\n"
            f"{''.join(self.output)}{''.join(self.stderr)}"
        )

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
