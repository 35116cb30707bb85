"""Project environments: which manager runs a project, and building its environment.

``local`` runs in the service's own interpreter; ``virtualenv`` builds a venv from
python_env.yaml (or a conda project's pip dependencies) with the requested Python; ``conda``
builds from conda.yaml with the conda binary from ``MLGRID_CONDA_HOME`` / ``MLFLOW_CONDA_HOME``
or PATH. Built environments are cached by content hash (see mlgrid.env_cache) and reused. Both get the
running mlgrid SDK (see sdk_site), as MLflow puts itself into the environments it builds.

Planning (choosing the manager, finding the interpreter or conda binary) happens when the run
is submitted, so a missing Python or conda is reported to the caller at once; building happens
in the background while the run is SCHEDULED.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from mlgrid.env_cache import (
    COMPLETE_MARKER,
    Log,
    content_key,
    env_root,
    find_conda,
    key_lock,
    publish,
    run_logged,
    scratch_dir,
)
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.env_files import CondaEnv, DockerEnv, PythonEnv
from mlgrid.projects.spec import Project

from .python_versions import Interpreter, find_python
from .sdk_site import link_sdk

__all__ = ["ENV_MANAGERS", "EnvironmentPlan", "build_environment", "plan_environment"]

ENV_MANAGERS = ("local", "virtualenv", "conda")
_PIP = ("install", "--disable-pip-version-check", "--no-input")


@dataclass(frozen=True)
class EnvironmentPlan:
    """How a run's environment will be made."""

    #: "local", "virtualenv" or "conda" (the mlflow.project.env tag).
    manager: str
    #: virtualenv: what to install, and with which interpreter.
    python_env: PythonEnv | None = None
    interpreter: Interpreter | None = None
    #: conda: the binary and the environment file's content.
    conda: str | None = None
    conda_spec: str | None = None


def _default_manager(project: Project) -> str:
    if isinstance(project.env, PythonEnv):
        return "virtualenv"
    if isinstance(project.env, CondaEnv):
        return "conda"
    if isinstance(project.env, DockerEnv):
        raise InvalidParameterValue(
            f"project {project.name!r} declares docker_env (image {project.env.image!r}): run "
            "it with backend 'docker' (mlgrid run ... -b docker), or with env_manager 'local' "
            "or 'virtualenv' to use this machine's Python instead"
        )
    return "local"


def _describe(project: Project) -> str:
    env = project.env
    path = getattr(env, "path", None)
    return str(path) if path else f"project {project.name!r}"


def plan_environment(project: Project, env_manager: str | None) -> EnvironmentPlan:
    """Chooses the manager and checks that what it needs is installed."""
    manager = env_manager or _default_manager(project)
    if manager not in ENV_MANAGERS:
        raise InvalidParameterValue(
            f"env_manager {manager!r} is not supported; use one of {', '.join(ENV_MANAGERS)}"
        )
    if manager == "local":
        return EnvironmentPlan(manager="local")
    env = project.env
    if manager == "virtualenv":
        if isinstance(env, PythonEnv):
            python_env = env
        elif isinstance(env, CondaEnv):
            python_env = env.as_python_env()
        else:
            python_env = PythonEnv(python=None)
        interpreter = find_python(python_env.python, _describe(project))
        return EnvironmentPlan(manager=manager, python_env=python_env, interpreter=interpreter)
    conda = find_conda("run with env_manager 'virtualenv' (uses its pip dependencies) or 'local'")
    if isinstance(env, CondaEnv):
        spec = env.path.read_text(encoding="utf-8")
    else:
        python = env.python if isinstance(env, PythonEnv) else None
        pip = [*env.build_dependencies, *env.dependencies] if isinstance(env, PythonEnv) else []
        deps: list[object] = [f"python={python}" if python else "python", "pip"]
        if pip:
            deps.append({"pip": pip})
        spec = yaml.safe_dump({"dependencies": deps})
    return EnvironmentPlan(manager=manager, conda=conda, conda_spec=spec)


def build_environment(plan: EnvironmentPlan, log: Log) -> dict[str, str]:
    """Builds (or reuses) the environment; returns the variables that activate it."""
    if plan.manager == "local":
        # The service's own interpreter answers to `python` in the command.
        return {"PATH": _prepend(Path(sys.executable).parent)}
    if plan.manager == "virtualenv":
        assert plan.python_env is not None and plan.interpreter is not None
        venv = _ensure_virtualenv(plan.interpreter, plan.python_env, log)
        link_sdk(venv / "bin" / "python", log)  # so the project can log with mlgrid
        return {"PATH": _prepend(venv / "bin"), "VIRTUAL_ENV": str(venv)}
    assert plan.conda is not None and plan.conda_spec is not None
    prefix = _ensure_conda_env(plan.conda, plan.conda_spec, log)
    link_sdk(prefix / "bin" / "python", log)
    return {
        "PATH": _prepend(prefix / "bin"),
        "CONDA_PREFIX": str(prefix),
        "CONDA_DEFAULT_ENV": str(prefix),
    }


def _prepend(directory: Path) -> str:
    return f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"


def _outer_pip(interpreter: Interpreter) -> list[str] | None:
    """The service's own pip, when it can install into another environment (``--python``,
    pip >= 22.3) running that environment's Python (>= 3.9 for current pips)."""
    try:
        pip_version = tuple(int(p) for p in metadata.version("pip").split(".")[:2])
        target = tuple(int(p) for p in interpreter.version.split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if pip_version < (22, 3) or target < (3, 9):
        return None
    return [sys.executable, "-m", "pip"]


def _ensure_virtualenv(interpreter: Interpreter, env: PythonEnv, log: Log) -> Path:
    root = env_root()
    key = content_key(
        {
            "kind": "virtualenv",
            "python": interpreter.version,
            "interpreter": str(interpreter.path.resolve()),
            "build_dependencies": list(env.build_dependencies),
            "dependencies": list(env.dependencies),
        }
    )
    final = root / f"virtualenv-{key}"
    if (final / COMPLETE_MARKER).exists():
        log(f"reusing virtualenv {final} (Python {interpreter.version})\n")
        return final
    with key_lock(root, key):
        if (final / COMPLETE_MARKER).exists():
            log(f"reusing virtualenv {final} (built concurrently)\n")
            return final
        log(f"building virtualenv {final} with Python {interpreter.version}\n")
        scratch = scratch_dir(root, key)
        try:
            python = str(scratch / "bin" / "python")
            outer = _outer_pip(interpreter)
            venv_args = [str(interpreter.path), "-m", "venv"]
            if outer is not None or not (env.build_dependencies or env.dependencies):
                venv_args.append("--without-pip")  # ensurepip takes seconds; avoid it
            run_logged([*venv_args, str(scratch)], log, "creating the virtualenv")
            pip = [*outer, "--python", python] if outer is not None else [python, "-m", "pip"]
            if env.build_dependencies:
                run_logged(
                    [*pip, *_PIP, *env.build_dependencies], log, "installing build_dependencies"
                )
            if env.dependencies:
                run_logged([*pip, *_PIP, *env.dependencies], log, "installing dependencies")
            publish(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return final


def _ensure_conda_env(conda: str, spec: str, log: Log) -> Path:
    root = env_root()
    key = content_key({"kind": "conda", "conda": conda, "spec": spec})
    final = root / f"conda-{key}"
    if (final / COMPLETE_MARKER).exists():
        log(f"reusing conda environment {final}\n")
        return final
    with key_lock(root, key):
        if (final / COMPLETE_MARKER).exists():
            return final
        # Conda prefixes are not relocatable, so the build happens in place under the lock;
        # the marker (written last) is what makes it count as built.
        shutil.rmtree(final, ignore_errors=True)
        spec_file = root / f".{key}.conda.yaml"
        spec_file.write_text(spec, encoding="utf-8")
        try:
            run_logged(
                [
                    conda,
                    "env",
                    "create",
                    "--quiet",
                    "--prefix",
                    str(final),
                    "--file",
                    str(spec_file),
                ],
                log,
                "creating the conda environment",
            )
            (final / COMPLETE_MARKER).write_text("ok\n")
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        finally:
            spec_file.unlink(missing_ok=True)
    return final
