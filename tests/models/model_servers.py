"""``mlgrid models serve`` as a real subprocess on a free port, and a small HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MLGRID = str(Path(sys.executable).parent / "mlgrid")
ANNOUNCE = re.compile(r"serving the model on http://([\d.]+):(\d+)")


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no tracking URIs of the test process, no MLflow telemetry
    (its start-up probe takes seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGRID_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(extra)
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    host: str
    port: int

    def request(
        self, method: str, path: str, body: bytes | str | None = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def invoke(self, payload: Any, content_type: str = "application/json") -> tuple[int, Any]:
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        status, raw = self.request("POST", "/invocations", body, content_type)
        return status, json.loads(raw)


@contextmanager
def served(model_uri: str, *flags: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Starts the server on port 0 and waits for its announcement (up to 5 minutes: a
    virtualenv may be built first)."""
    command = [MLGRID, "models", "serve", "-m", model_uri, "-p", "0", *flags]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env or quiet_env(),
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        assert process.stderr is not None
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                raise AssertionError(f"the server exited ({process.wait()}):\n{''.join(lines)}")
            lines.append(line)
            found = ANNOUNCE.search(line)
            if found:
                yield Served(process, found[1], int(found[2]))
                break
        else:
            raise AssertionError(f"the server did not start:\n{''.join(lines)}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
