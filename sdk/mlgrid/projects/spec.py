"""Loading a project: its MLproject file, or the directory conventions when there is none.

MLproject keys: ``name``, ``entry_points``, and at most one of ``python_env``, ``conda_env``,
``docker_env``. Anything else is refused with the file and key named (a misspelt
``entry_point:`` would otherwise silently leave the project without entry points).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.env_files import (
    CondaEnv,
    DockerEnv,
    PythonEnv,
    load_conda_env,
    load_python_env,
    parse_docker_env,
)

__all__ = [
    "PARAMETER_TYPES",
    "EntryPoint",
    "Parameter",
    "Project",
    "find_mlproject",
    "load_project",
    "resolve_inside",
]

PARAMETER_TYPES = ("string", "float", "path", "uri")
_TOP_KEYS = ("name", "entry_points", "python_env", "conda_env", "docker_env")
_ENV_KEYS = ("python_env", "conda_env", "docker_env")
_ENTRY_KEYS = ("command", "parameters")
_PARAM_KEYS = ("type", "default")
#: Parameter names usable as format fields in a command.
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: How files given as entry points run, by extension.
SCRIPT_RUNNERS = {".py": "python", ".sh": "bash"}


@dataclass(frozen=True)
class Parameter:
    """A declared entry-point parameter."""

    name: str
    type: str = "string"
    #: Default as a string; None when the parameter is required.
    default: str | None = None


@dataclass(frozen=True)
class EntryPoint:
    """A command (a Python format string over the parameters) and its declared parameters."""

    name: str
    command: str
    parameters: dict[str, Parameter] = field(default_factory=dict)


@dataclass(frozen=True)
class Project:
    """A loaded project directory."""

    directory: Path
    name: str
    entry_points: dict[str, EntryPoint]
    #: The environment it declares (or the conventions found); None = none declared.
    env: PythonEnv | CondaEnv | DockerEnv | None = None
    #: The MLproject file, when the project has one.
    mlproject: Path | None = None

    @property
    def env_type(self) -> str | None:
        """ "python", "conda", "docker" or None."""
        if isinstance(self.env, PythonEnv):
            return "python"
        if isinstance(self.env, CondaEnv):
            return "conda"
        if isinstance(self.env, DockerEnv):
            return "docker"
        return None

    def get_entry_point(self, name: str) -> EntryPoint:
        """A declared entry point, or a .py / .sh file of the project run as a script."""
        if name in self.entry_points:
            return self.entry_points[name]
        runner = SCRIPT_RUNNERS.get(Path(name).suffix)
        if runner is not None:
            script = resolve_inside(self.directory, name, "entry point")
            if script.is_file():
                return EntryPoint(name=name, command=f"{runner} {shlex.quote(name)}")
        declared = ", ".join(sorted(self.entry_points)) or "none"
        raise InvalidParameterValue(
            f"entry point {name!r} not found in project {self.name!r}: it is neither declared "
            f"(declared entry points: {declared}) nor a .py or .sh file of the project"
        )


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, refusing absolute paths and anything that leaves ``root``."""
    if not relative or Path(relative).is_absolute() or "\x00" in relative:
        raise InvalidParameterValue(
            f"{what} {relative!r} must be a relative path inside the project"
        )
    base = root.resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise InvalidParameterValue(f"{what} {relative!r} points outside the project")
    return target


def find_mlproject(directory: Path) -> Path | None:
    """The MLproject file of ``directory`` (name matched case-insensitively)."""
    found = sorted(p for p in directory.iterdir() if p.name.lower() == "mlproject" and p.is_file())
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InvalidParameterValue(
            f"project {directory} has several MLproject files ({names}); keep exactly one"
        )
    return found[0] if found else None


def load_project(directory: Path) -> Project:
    """Loads the project in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidParameterValue(f"project directory {str(directory)!r} does not exist")
    mlproject = find_mlproject(directory)
    if mlproject is None:
        return _conventional_project(directory)
    return _parse_mlproject(directory, mlproject)


def _conventional_project(directory: Path) -> Project:
    env: PythonEnv | CondaEnv | None = None
    if (directory / "python_env.yaml").is_file():
        env = load_python_env(directory / "python_env.yaml")
    elif (directory / "conda.yaml").is_file():
        env = load_conda_env(directory / "conda.yaml")
    return Project(directory=directory, name=directory.resolve().name, entry_points={}, env=env)


def _parse_mlproject(directory: Path, path: Path) -> Project:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidParameterValue(f"MLproject file {path} is not valid YAML: {exc}") from exc
    where = f"MLproject file {path}"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidParameterValue(f"{where} must be a mapping with keys {', '.join(_TOP_KEYS)}")
    for key in data:
        if key not in _TOP_KEYS:
            raise InvalidParameterValue(
                f"{where}: unknown key {key!r}; allowed keys: {', '.join(_TOP_KEYS)}"
            )
    envs = [key for key in _ENV_KEYS if key in data]
    if len(envs) > 1:
        raise InvalidParameterValue(
            f"{where}: keys {' and '.join(repr(k) for k in envs)} both given; a project has at "
            "most one of python_env, conda_env, docker_env"
        )
    name = data.get("name", directory.resolve().name)
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue(f"{where}: key 'name' must be a non-empty string, got {name!r}")
    env: PythonEnv | CondaEnv | DockerEnv | None = None
    if "python_env" in data:
        env = load_python_env(_env_file(directory, data["python_env"], "python_env", where))
    elif "conda_env" in data:
        env = load_conda_env(_env_file(directory, data["conda_env"], "conda_env", where))
    elif "docker_env" in data:
        env = parse_docker_env(data["docker_env"], where)
    entry_points = _parse_entry_points(data.get("entry_points"), where)
    return Project(
        directory=directory, name=name, entry_points=entry_points, env=env, mlproject=path
    )


def _env_file(directory: Path, value: Any, key: str, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InvalidParameterValue(
            f"{where}: key {key!r} must be a relative path to a YAML file, got {value!r}"
        )
    try:
        target = resolve_inside(directory, value, f"key {key!r}")
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"{where}: {exc.message}") from None
    if not target.is_file():
        raise InvalidParameterValue(f"{where}: key {key!r} names {value!r}, which does not exist")
    return target


def _parse_entry_points(value: Any, where: str) -> dict[str, EntryPoint]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameterValue(
            f"{where}: key 'entry_points' must be a mapping of entry point names, got {value!r}"
        )
    result: dict[str, EntryPoint] = {}
    for name, body in value.items():
        key = f"entry_points.{name}"
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue(f"{where}: entry point name {name!r} must be a string")
        if not isinstance(body, dict):
            raise InvalidParameterValue(
                f"{where}: key {key!r} must be a mapping with a 'command', got {body!r}"
            )
        for sub in body:
            if sub not in _ENTRY_KEYS:
                raise InvalidParameterValue(
                    f"{where}: unknown key '{key}.{sub}'; allowed keys: {', '.join(_ENTRY_KEYS)}"
                )
        command = body.get("command")
        if command is None:
            raise InvalidParameterValue(f"{where}: key '{key}.command' is missing")
        if not isinstance(command, str) or not command.strip():
            raise InvalidParameterValue(
                f"{where}: key '{key}.command' must be a non-empty string, got {command!r}"
            )
        params = _parse_parameters(body.get("parameters"), f"{key}.parameters", where)
        result[name] = EntryPoint(name=name, command=command, parameters=params)
    return result


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _parse_parameters(value: Any, key: str, where: str) -> dict[str, Parameter]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameterValue(f"{where}: key {key!r} must be a mapping, got {value!r}")
    params: dict[str, Parameter] = {}
    for name, spec in value.items():
        pkey = f"{key}.{name}"
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise InvalidParameterValue(
                f"{where}: parameter name {name!r} in {key!r} must start with a letter or _ and "
                "hold only letters, digits, _ and -"
            )
        default: str | None = None
        if isinstance(spec, str):
            ptype = spec
        elif isinstance(spec, dict):
            for sub in spec:
                if sub not in _PARAM_KEYS:
                    raise InvalidParameterValue(
                        f"{where}: unknown key '{pkey}.{sub}'; allowed keys: type, default"
                    )
            ptype = spec.get("type", "string")
            raw_default = spec.get("default")
            if isinstance(raw_default, list | dict):
                raise InvalidParameterValue(
                    f"{where}: key '{pkey}.default' must be a scalar, got {raw_default!r}"
                )
            default = None if raw_default is None else _scalar(raw_default)
        else:
            raise InvalidParameterValue(
                f"{where}: key {pkey!r} must be a type name or a {{type, default}} mapping, "
                f"got {spec!r}"
            )
        if ptype not in PARAMETER_TYPES:
            raise InvalidParameterValue(
                f"{where}: key '{pkey}.type' is {ptype!r}; allowed types: "
                f"{', '.join(PARAMETER_TYPES)}"
            )
        params[name] = Parameter(name=name, type=ptype, default=default)
    return params
