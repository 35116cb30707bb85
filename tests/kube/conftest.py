"""Fixtures of the kubernetes backend's tests: the local API server, its pods on the test engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube_api import KubeApiServer
from tests.fixtures.kube_pods import PodRunner
from tests.projects.helpers import write


@dataclass
class Cluster:
    """A local API server whose Jobs' pods run as containers on the test engine."""

    api: KubeApiServer
    pods: PodRunner
    #: Its kubeconfig (context "mlgrid-test", namespace "default"); KUBECONFIG points at it.
    kubeconfig: Path
    #: The engine's Python base image and open registry (``127.0.0.1:<port>``).
    python_image: str
    registry: str
    engine: Any


@pytest.fixture
def cluster(
    container_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    api = KubeApiServer().start()
    client = container_engine.client()
    pods = PodRunner(api, client)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    try:
        yield Cluster(
            api,
            pods,
            kubeconfig,
            container_engine.python_image,
            container_engine.registry,
            container_engine,
        )
    finally:
        api.stop()
        pods.close()
        client.close()


@pytest.fixture
def python_image(container_engine: Any) -> str:
    """A local image with Python 3 (a project's docker_env image)."""
    return str(container_engine.python_image)


@pytest.fixture
def registry(container_engine: Any) -> str:
    """``127.0.0.1:<port>`` of the engine's open registry."""
    return str(container_engine.registry)


def project(directory: Path, image: str) -> Path:
    """The project of these tests (one, so its image is built once per test run): it prints a
    greeting from docker_env and the template, sleeps ``sleep`` seconds, and logs ``alpha * 2``
    as metric ``doubled`` into its run."""
    return write(
        directory,
        {
            "MLproject": f"""
                name: kube-demo
                docker_env:
                  image: {image}
                  environment: [["GREETING", "hello"]]
                entry_points:
                  main:
                    parameters:
                      alpha: {{type: float, default: 0.5}}
                      sleep: {{type: float, default: 0}}
                    command: "python train.py --alpha {{alpha}} --sleep {{sleep}}"
            """,
            "train.py": """
                import argparse, os, time
                import mlgrid
                parser = argparse.ArgumentParser()
                parser.add_argument("--alpha", type=float)
                parser.add_argument("--sleep", type=float)
                args = parser.parse_args()
                print("greeting:", os.environ["GREETING"], os.environ.get("FROM_TEMPLATE"), flush=True)
                time.sleep(args.sleep)
                with mlgrid.start_run() as run:
                    print("logging into", run.info.run_id, flush=True)
                    mlgrid.log_metric("doubled", args.alpha * 2)
                print("done", flush=True)
            """,
        },
    )


@pytest.fixture(autouse=True)
def _open_project_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run projects from local directories, which a deployment's source policy
    refuses by default (tests/hardening/test_project_sources.py checks that)."""
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
