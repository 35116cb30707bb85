"""Plugin tests: the example plugin (tests/resources/mlgrid-test-plugin) installed into .venv.

The plugin is installed when this directory is collected, before any test of the session runs:
services and the SDK read the entry points once per process (lazily), so installing later would
leave a worker that already used them blind to the plugin. Installing is guarded by a file lock
so that xdist workers do not race, and skipped when this checkout's plugin is installed already
(CI's fresh clone installs it on its first run).
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path

import pytest

from mlgrid import fluent, tracking_uri

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the dev extra installs it there)
    import tomli as tomllib

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "resources" / "mlgrid-test-plugin"
_LOCK = Path(tempfile.gettempdir()) / "mlgrid-test-plugin-install.lock"


def _declared_entry_points() -> set[tuple[str, str, str]]:
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    return {
        (group, name, value)
        for group, entries in project["entry-points"].items()
        for name, value in entries.items()
    }


def _installed_from_this_checkout() -> bool:
    """This checkout's plugin is installed, with the entry points its pyproject declares."""
    importlib.invalidate_caches()
    try:
        dist = distribution("mlgrid-test-plugin")
    except PackageNotFoundError:
        return False
    origin = json.loads(dist.read_text("direct_url.json") or "{}").get("url")
    installed = {(e.group, e.name, e.value) for e in dist.entry_points}
    return origin == PLUGIN_DIR.as_uri() and installed == _declared_entry_points()


def install_test_plugin() -> None:
    """Installs the example plugin (editable, no dependencies) unless it is installed already."""
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed_from_this_checkout():
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
            # Build with the environment's setuptools (offline) when it has one.
            if importlib.util.find_spec("setuptools") is not None:
                command.append("--no-build-isolation")
            done = subprocess.run(
                [*command, "-e", str(PLUGIN_DIR)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"installing {PLUGIN_DIR} failed:\n{done.stdout}{done.stderr}")
    importlib.invalidate_caches()
    # The editable install's .pth file is read at interpreter start; this process imports the
    # plugin from its source directory instead (subprocesses get the .pth).
    if importlib.util.find_spec("mlgrid_test_plugin") is None:
        sys.path.insert(0, str(PLUGIN_DIR))
    names = {e.name for e in entry_points(group="mlgrid.tracking_store")}
    if "file-plugin" not in names:
        raise RuntimeError(
            f"the test plugin's entry points are not visible after installing: {names}"
        )


install_test_plugin()

_PREFIXES = ("MLGRID_", "MLFLOW_")


@pytest.fixture(autouse=True)
def clean_client_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No inherited MLGRID_* variables, no URI set, no active run; cleaned up again after."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    tracking_uri.set_tracking_uri(None)
    tracking_uri.set_registry_uri(None)
    fluent.state.forget()
    yield
    while fluent.active_run() is not None:
        try:
            fluent.end_run()
        except Exception:
            break
    fluent.state.forget()
    tracking_uri.set_tracking_uri(None)
    tracking_uri.set_registry_uri(None)
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            del os.environ[name]


@pytest.fixture(autouse=True)
def _local_projects_allowed(clean_client_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Project backend plugins here run local project directories, which a deployment's source
    policy refuses unless MLGRID_PROJECTS_ALLOW_LOCAL_PATHS (services/projects/source_policy.py)."""
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
