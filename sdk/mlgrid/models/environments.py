"""The environment a model runs in, for ``--env-manager virtualenv|conda`` (as MLflow's).

``virtualenv``: a venv made with the Python the model's ``python_env.yaml`` names (this
interpreter when the minor versions agree, else ``pythonX.Y`` on PATH), its
``build_dependencies``, then its ``dependencies`` (``-r requirements.txt`` read from the model),
plus the running mlgrid (which need not be on any index: installed from where it is installed
from here) and pandas, which the scoring server needs. ``conda``: ``conda env create`` from the
model's ``conda.yaml`` plus the same mlgrid; conda comes from MLGRID_CONDA_HOME /
MLFLOW_CONDA_HOME or PATH, and a clear error says so when there is none.

Environments are cached as projects' are (:mod:`mlgrid.env_cache`): under ``MLGRID_ENV_ROOT``
(~/.mlgrid/envs), named by a hash of what went into them, built in a scratch directory under a
per-key lock and made visible by a rename only once complete, so a failed build leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
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

__all__ = ["ModelEnvironment", "build_model_environment", "mlgrid_requirement"]


class ModelEnvironment:
    """A built environment: its ``bin`` directory holds ``python`` and ``mlgrid``."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.bin = prefix / "bin"

    @property
    def mlgrid(self) -> list[str]:
        """The mlgrid command inside the environment. Through ``python -m``: the console
        script's first line names the directory the environment was built in, not this one."""
        return [str(self.bin / "python"), "-m", "mlgrid.cli.main"]


def mlgrid_requirement() -> str:
    """How pip installs the running mlgrid: from its source directory when it was installed
    from one (a checkout), else by version from the index."""
    try:
        dist = metadata.distribution("mlgrid")
        direct = dist.read_text("direct_url.json")
        version = dist.version
    except metadata.PackageNotFoundError:
        import mlgrid

        return f"mlgrid=={mlgrid.__version__}"
    if direct:
        url = json.loads(direct).get("url", "")
        if url.startswith("file://"):
            return f"mlgrid[pandas] @ {url}"
    return f"mlgrid[pandas]=={version}"


def mlgrid_fingerprint() -> str:
    """A hash of the running mlgrid's code (file names, sizes, modification times), so an
    environment holding an older copy of it is not reused."""
    import mlgrid

    root = Path(mlgrid.__file__).parent
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        stat = file.stat()
        digest.update(f"{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _is_mlgrid_line(line: str) -> bool:
    name = line.split(";", 1)[0].strip()
    for stop in "[=<>!~ @":
        name = name.split(stop, 1)[0]
    return name.lower().replace("_", "-") == "mlgrid"


def _pip_dependencies(model_dir: Path, dependencies: list[str]) -> list[str]:
    """The model's dependencies with ``-r file`` expanded (from the model directory) and any
    mlgrid line replaced by the running mlgrid."""
    out: list[str] = []
    for entry in dependencies:
        entry = str(entry).strip()
        if entry.startswith("-r"):
            name = entry[2:].strip()
            requirements = (model_dir / name).resolve()
            if not requirements.is_relative_to(model_dir.resolve()) or not requirements.is_file():
                raise InvalidParameterValue(
                    f"python_env.yaml names {name!r}, which is not a file of the model"
                )
            lines = requirements.read_text().splitlines()
            out += _pip_dependencies(
                model_dir, [ln for ln in lines if ln.strip() and not ln.startswith("#")]
            )
        elif not _is_mlgrid_line(entry):
            out.append(entry)
    return out


def _interpreter(version: str | None) -> str:
    if not version:
        return sys.executable
    wanted = ".".join(str(version).split(".")[:2])
    if wanted == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    found = shutil.which(f"python{wanted}")
    if found:
        return found
    raise InvalidParameterValue(
        f"the model was saved with Python {version} and no python{wanted} is on PATH: install "
        "it, or serve the model with --env-manager local"
    )


def build_model_environment(model_dir: Path, manager: str, log: Log) -> ModelEnvironment:
    """Builds (or reuses) the ``virtualenv`` or ``conda`` environment of a model directory."""
    if manager == "virtualenv":
        return _virtualenv(model_dir, log)
    if manager == "conda":
        return _conda(model_dir, log)
    raise InvalidParameterValue(
        f"env manager {manager!r} builds nothing; choose virtualenv or conda (or local)"
    )


def _virtualenv(model_dir: Path, log: Log) -> ModelEnvironment:
    env_file = model_dir / "python_env.yaml"
    spec = yaml.safe_load(env_file.read_text()) if env_file.is_file() else {}
    if not isinstance(spec, dict):
        raise InvalidParameterValue(f"{env_file} is not a YAML mapping")
    if not env_file.is_file():  # an old model: its requirements.txt alone
        spec = (
            {"dependencies": ["-r requirements.txt"]}
            if (model_dir / "requirements.txt").is_file()
            else {}
        )
    interpreter = _interpreter(spec.get("python"))
    build = [str(d) for d in spec.get("build_dependencies") or []]
    deps = _pip_dependencies(model_dir, list(spec.get("dependencies") or []))
    deps.append(mlgrid_requirement())
    root = env_root()
    key = content_key(
        {
            "kind": "model-virtualenv",
            "python": interpreter,
            "build": build,
            "deps": deps,
            "mlgrid": mlgrid_fingerprint(),
        }
    )
    final = root / f"model-venv-{key}"
    if (final / COMPLETE_MARKER).exists():
        log(f"reusing the model's virtualenv {final}\n")
        return ModelEnvironment(final)
    with key_lock(root, key):
        if (final / COMPLETE_MARKER).exists():
            return ModelEnvironment(final)
        scratch = scratch_dir(root, key)
        try:
            run_logged([interpreter, "-m", "venv", str(scratch)], log, "creating the virtualenv")
            pip = [str(scratch / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            pip.append("--disable-pip-version-check")
            if build:
                run_logged([*pip, *build], log, "installing build_dependencies")
            run_logged([*pip, *deps], log, "installing the model's dependencies")
            publish(scratch, final)  # rewrites the scratch path in scripts, then renames
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return ModelEnvironment(final)


def _conda(model_dir: Path, log: Log) -> ModelEnvironment:
    conda = find_conda("serve with --env-manager virtualenv (the model's python_env.yaml) or local")
    env_file = model_dir / "conda.yaml"
    if not env_file.is_file():
        raise InvalidParameterValue(
            "the model has no conda.yaml; serve it with --env-manager virtualenv or local"
        )
    spec = yaml.safe_load(env_file.read_text()) or {}
    dependencies = list(spec.get("dependencies") or [])
    for entry in dependencies:
        if isinstance(entry, dict) and "pip" in entry:
            entry["pip"] = [p for p in entry["pip"] if not _is_mlgrid_line(str(p))]
            entry["pip"].append(mlgrid_requirement())
            break
    else:
        dependencies += ["pip", {"pip": [mlgrid_requirement()]}]
    spec["dependencies"] = dependencies
    text = yaml.safe_dump(spec, sort_keys=True)
    root = env_root()
    key = content_key(
        {"kind": "model-conda", "conda": conda, "spec": text, "mlgrid": mlgrid_fingerprint()}
    )
    final = root / f"model-conda-{key}"
    if (final / COMPLETE_MARKER).exists():
        return ModelEnvironment(final)
    with key_lock(root, key):
        if (final / COMPLETE_MARKER).exists():
            return ModelEnvironment(final)
        shutil.rmtree(final, ignore_errors=True)
        spec_file = root / f".{key}.conda.yaml"
        spec_file.write_text(text)
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
    return ModelEnvironment(final)
