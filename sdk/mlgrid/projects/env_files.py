"""The environment descriptions a project can carry: python_env.yaml, conda.yaml, docker_env.

Each loader validates the shape strictly and names the file and key at fault, because a typo
here otherwise surfaces minutes later as a confusing failure inside an environment build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlgrid.exceptions import InvalidParameterValue

__all__ = [
    "CondaEnv",
    "DockerEnv",
    "PythonEnv",
    "load_conda_env",
    "load_python_env",
    "parse_docker_env",
]

_PYTHON_ENV_KEYS = ("python", "build_dependencies", "dependencies")
_DOCKER_ENV_KEYS = ("image", "volumes", "environment")
_PYTHON_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")


@dataclass(frozen=True)
class PythonEnv:
    """A virtualenv description (python_env.yaml)."""

    #: Requested Python version ("3.11" or "3.11.7"); None means the current interpreter's.
    python: str | None
    #: Installed first (pip, setuptools, wheel, ...).
    build_dependencies: tuple[str, ...] = ()
    #: The project's requirements, installed after the build dependencies.
    dependencies: tuple[str, ...] = ()
    #: The file it was read from (None when derived, e.g. from a conda.yaml).
    path: Path | None = None


@dataclass(frozen=True)
class CondaEnv:
    """A conda environment file (conda.yaml)."""

    path: Path
    #: Python version pinned among the conda dependencies, if any.
    python: str | None
    #: The ``pip:`` dependencies (what --env-manager virtualenv installs).
    pip_dependencies: tuple[str, ...] = ()

    def as_python_env(self) -> PythonEnv:
        """The virtualenv equivalent: same Python, only the pip dependencies."""
        return PythonEnv(python=self.python, dependencies=self.pip_dependencies, path=None)


@dataclass(frozen=True)
class DockerEnv:
    """A docker_env entry, validated now and executed by the docker backend."""

    image: str
    volumes: tuple[str, ...] = ()
    #: Names copied from the host, or (name, value) pairs.
    environment: tuple[str | tuple[str, str], ...] = field(default_factory=tuple)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParameterValue(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidParameterValue(f"{path} is not valid YAML: {exc}") from exc


def _string_list(value: Any, key: str, where: Path | str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidParameterValue(
            f"{where}: key {key!r} must be a list of strings, got {value!r}"
        )
    return tuple(value)


def _python_version(value: Any, key: str, where: Path | str) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        # YAML reads 3.10 as the number 3.1; refuse rather than silently pick the wrong Python.
        raise InvalidParameterValue(
            f'{where}: key {key!r} must be a quoted string such as "3.11", got the number {value!r}'
        )
    if not isinstance(value, str) or not _PYTHON_VERSION.match(value.strip()):
        raise InvalidParameterValue(
            f'{where}: key {key!r} must be a Python version like "3.11" or "3.11.7", got {value!r}'
        )
    return value.strip()


def load_python_env(path: Path) -> PythonEnv:
    """Reads and validates a python_env.yaml file."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise InvalidParameterValue(
            f"{path}: must be a mapping with keys {', '.join(_PYTHON_ENV_KEYS)}"
        )
    for key in data:
        if key not in _PYTHON_ENV_KEYS:
            raise InvalidParameterValue(
                f"{path}: unknown key {key!r}; allowed keys: {', '.join(_PYTHON_ENV_KEYS)}"
            )
    if "python" not in data:
        raise InvalidParameterValue(f"{path}: key 'python' (the Python version) is missing")
    return PythonEnv(
        python=_python_version(data["python"], "python", path),
        build_dependencies=_string_list(data.get("build_dependencies"), "build_dependencies", path),
        dependencies=_string_list(data.get("dependencies"), "dependencies", path),
        path=path,
    )


def _conda_python(spec: str) -> str | None:
    # "python", "python=3.11", "python==3.11.7", "python>=3.9" (a range pins nothing).
    match = re.match(r"^python\s*(==?)\s*([\d.]+)\*?$", spec.strip())
    if match:
        return match.group(2).rstrip(".")
    return None


def load_conda_env(path: Path) -> CondaEnv:
    """Reads a conda environment file; keeps its Python pin and its pip dependencies."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise InvalidParameterValue(f"{path}: a conda environment file must be a mapping")
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise InvalidParameterValue(f"{path}: key 'dependencies' must be a list, got {deps!r}")
    python: str | None = None
    pip: tuple[str, ...] = ()
    for dep in deps:
        if isinstance(dep, str):
            python = python or _conda_python(dep)
        elif isinstance(dep, dict) and set(dep) == {"pip"}:
            pip += _string_list(dep["pip"], "dependencies.pip", path)
        else:
            raise InvalidParameterValue(
                f"{path}: key 'dependencies' holds {dep!r}; entries are package specs or a "
                "{pip: [...]} mapping"
            )
    return CondaEnv(path=path, python=python, pip_dependencies=pip)


def parse_docker_env(value: Any, where: Path | str) -> DockerEnv:
    """Validates a ``docker_env`` mapping: image, volumes, environment."""
    if not isinstance(value, dict):
        raise InvalidParameterValue(
            f"{where}: key 'docker_env' must be a mapping with an 'image', got {value!r}"
        )
    for key in value:
        if key not in _DOCKER_ENV_KEYS:
            raise InvalidParameterValue(
                f"{where}: unknown key 'docker_env.{key}'; allowed keys: "
                f"{', '.join(_DOCKER_ENV_KEYS)}"
            )
    image = value.get("image")
    if not isinstance(image, str) or not image.strip():
        raise InvalidParameterValue(
            f"{where}: key 'docker_env.image' must be a non-empty image name, got {image!r}"
        )
    volumes = _string_list(value.get("volumes"), "docker_env.volumes", where)
    environment: list[str | tuple[str, str]] = []
    raw_env = value.get("environment") or []
    if not isinstance(raw_env, list):
        raise InvalidParameterValue(
            f"{where}: key 'docker_env.environment' must be a list, got {raw_env!r}"
        )
    for item in raw_env:
        if isinstance(item, str) and item:
            environment.append(item)
        elif (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and item[0]
            and isinstance(item[1], str | int | float | bool)
        ):
            environment.append((item[0], str(item[1])))
        else:
            raise InvalidParameterValue(
                f"{where}: key 'docker_env.environment' holds {item!r}; entries are a variable "
                "name copied from the host or a [name, value] pair"
            )
    return DockerEnv(image=image.strip(), volumes=volumes, environment=tuple(environment))
