"""Environments: interpreters, a real cached virtualenv, conda discovery, manager choice."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlgrid.env_cache import COMPLETE_MARKER
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.spec import load_project
from mlgrid_services.projects.environments import build_environment, plan_environment
from mlgrid_services.projects.python_versions import find_python

from .helpers import write
from .wheels import tiny_wheel

CURRENT = platform.python_version()
MINOR = ".".join(CURRENT.split(".")[:2])


def test_current_interpreter_serves_a_matching_request() -> None:
    assert find_python(None).path == Path(sys.executable)
    assert find_python(MINOR).version == CURRENT
    assert find_python(CURRENT).path == Path(sys.executable)


def test_pyenv_versions_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pyenv layout whose interpreters are real (links to this one) under other version names.
    for version in ("3.9.1", "3.9.12", "3.8.0"):
        bin_dir = tmp_path / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    found = find_python("3.9")
    assert found.version == "3.9.12"  # the newest matching patch release
    assert found.path == tmp_path / "versions" / "3.9.12" / "bin" / "python"
    assert find_python("3.9.1").version == "3.9.1"


def test_missing_interpreter_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    with pytest.raises(InvalidParameterValue) as info:
        find_python("3.2.1", "python_env.yaml of demo")
    assert "Python 3.2.1 (asked for by python_env.yaml of demo) is not installed" in str(info.value)
    assert "pyenv install 3.2.1" in str(info.value)


def python_env_project(directory: Path, dependencies: list[str]) -> Path:
    deps = "".join(f"\n  - {d}" for d in dependencies) if dependencies else " []"
    return write(
        directory,
        {
            "MLproject": "name: venv-project\npython_env: python_env.yaml\n",
            "python_env.yaml": f'python: "{MINOR}"\ndependencies:{deps}\n',
        },
    )


def test_virtualenv_is_built_once_then_reused(env_root: Path, tmp_path: Path) -> None:
    wheel = tiny_wheel(tmp_path / "wheels")
    project = load_project(python_env_project(tmp_path / "p", [str(wheel)]))
    plan = plan_environment(project, None)
    assert plan.manager == "virtualenv"
    first: list[str] = []
    activation = build_environment(plan, first.append)
    venv = Path(activation["VIRTUAL_ENV"])
    assert venv.parent == env_root and (venv / COMPLETE_MARKER).exists()
    assert any("building virtualenv" in line for line in first)
    assert activation["PATH"].startswith(f"{venv / 'bin'}{os.pathsep}")
    out = subprocess.run(
        ["python", "-c", "import sys, mlgrid_tinypkg; print(sys.prefix, mlgrid_tinypkg.VALUE)"],
        env={**os.environ, **activation},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(venv), "tiny"]
    second: list[str] = []
    assert build_environment(plan_environment(project, None), second.append) == activation
    assert any("reusing virtualenv" in line for line in second)
    assert not any("building" in line for line in second)


def test_concurrent_builders_share_one_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_ENV_ROOT", str(tmp_path / "envs"))
    project = load_project(python_env_project(tmp_path / "p", []))
    logs: list[list[str]] = [[] for _ in range(4)]
    results: list[dict[str, str]] = [{} for _ in range(4)]

    def build(i: int) -> None:
        results[i] = build_environment(plan_environment(project, None), logs[i].append)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["VIRTUAL_ENV"] for r in results}) == 1
    builds = sum(any("building virtualenv" in line for line in log) for log in logs)
    assert builds == 1
    leftovers = [p.name for p in (tmp_path / "envs").iterdir() if p.name.startswith(".building")]
    assert leftovers == []


def test_conda_project_needs_conda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(
        write(tmp_path / "c", {"conda.yaml": "dependencies: [python=3.11, {pip: [six==1.16.0]}]\n"})
    )
    monkeypatch.delenv("MLGRID_CONDA_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_CONDA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(InvalidParameterValue, match="no conda is installed: set MLGRID_CONDA_HOME"):
        plan_environment(project, None)
    monkeypatch.setenv("MLFLOW_CONDA_HOME", str(tmp_path / "not-conda"))
    with pytest.raises(
        InvalidParameterValue, match=r"MLFLOW_CONDA_HOME=.*not-conda has no bin/conda"
    ):
        plan_environment(project, "conda")
    conda = tmp_path / "conda-home" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    conda.write_text("#!/bin/sh\n")
    monkeypatch.setenv("MLGRID_CONDA_HOME", str(tmp_path / "conda-home"))  # wins over MLFLOW_
    plan = plan_environment(project, None)
    assert (plan.manager, plan.conda) == ("conda", str(conda))
    assert plan.conda_spec is not None and "six==1.16.0" in plan.conda_spec


def test_conda_project_as_virtualenv_uses_its_pip_dependencies(tmp_path: Path) -> None:
    project = load_project(
        write(
            tmp_path / "c",
            {"conda.yaml": f"dependencies: [python={MINOR}, numpy, {{pip: [six==1.16.0]}}]\n"},
        )
    )
    plan = plan_environment(project, "virtualenv")
    assert plan.manager == "virtualenv"
    assert plan.python_env is not None
    assert plan.python_env.dependencies == ("six==1.16.0",)
    assert plan.interpreter is not None and plan.interpreter.version.startswith(MINOR)


def test_docker_project_on_the_local_backend(tmp_path: Path) -> None:
    project = load_project(
        write(tmp_path / "d", {"MLproject": "name: d\ndocker_env: {image: python:3.11}\n"})
    )
    with pytest.raises(InvalidParameterValue, match=r"docker_env .*: run it with backend 'docker'"):
        plan_environment(project, None)
    assert plan_environment(project, "local").manager == "local"


def test_local_manager_runs_this_interpreter(tmp_path: Path) -> None:
    project = load_project(write(tmp_path / "l", {"main.py": ""}))
    plan = plan_environment(project, None)
    assert plan.manager == "local"
    activation = build_environment(plan, lambda _line: None)
    out = subprocess.run(
        ["python", "-c", "import sys; print(sys.executable)"],
        env={**os.environ, **activation},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).parent == Path(sys.executable).parent
