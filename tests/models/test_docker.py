"""``mlgrid models build-docker`` on the real container engine: the image serves the model."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cloudpickle
import pandas as pd
from fixtures.containers import ContainerEngine
from model_servers import MLGRID, quiet_env

import mlgrid.pyfunc
from mlgrid.models import infer_signature

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Doubler(mlgrid.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input["x"] * 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(port: int, payload: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps(payload)
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_built_image_serves_the_model(container_engine: ContainerEngine, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    mlgrid.pyfunc.save_model(
        tmp_path / "model", python_model=Doubler(), signature=infer_signature(frame)
    )
    image = f"localhost/mlgrid-test-model:{uuid.uuid4().hex[:8]}"
    env = quiet_env(DOCKER_HOST=container_engine.docker_host)
    command = [MLGRID, "models", "build-docker", "-m", str(tmp_path / "model"), "-n", image]
    done = subprocess.run(
        [*command, "--base-image", container_engine.python_image],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Built image {image}" in done.stdout

    client = container_engine.client()
    port = _free_port()
    container = client.containers.run(
        image, ["-p", str(port)], network_mode="host", detach=True, remove=False
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, answer = _post(port, {"inputs": {"x": [1.5, 4.0]}})
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError(f"the container never answered:\n{container.logs().decode()}")
        assert (status, answer) == (200, {"predictions": [3.0, 8.0]})
        status, answer = _post(port, {"inputs": {"x": ["two"]}})
        assert status == 400 and "column 'x': expected double" in answer["message"]
    finally:
        container.remove(force=True)
        client.images.remove(image, force=True)
