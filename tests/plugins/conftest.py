"""Plugin tests: the example plugin (tests/resources/mlgrid-test-plugin), visible to this test
session and the processes it starts, and to nothing else.

The plugin is not installed into .venv: an install there would outlive the tests, so the stack
`make up` starts from the same venv afterwards would offer the example's schemes and log its
deliberately broken entries, and the benchmarks' clients would import its providers. Instead a
folder of this process's own holds the plugin's distribution metadata (its ``entry_points.txt``
built from its pyproject), and that folder and the plugin's source folder go first on
``sys.path`` and on ``PYTHONPATH``, which every process the tests start inherits: Python finds
entry points through the distributions on its path, an installed one included. This happens
when the directory is collected, before any test of the session runs: services and the SDK
read the entry points once per path state (mlgrid.plugins.registry).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from mlgrid import fluent, tracking_uri

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the dev extra installs it there)
    import tomli as tomllib

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "resources" / "mlgrid-test-plugin"


def _distribution_metadata(project: dict[str, Any]) -> dict[str, str]:
    """The files of the plugin's ``.dist-info`` folder that discovery reads: its name and
    version, and its entry points in the INI form installers write."""
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
        lines.append("")
    return {
        "METADATA": (
            f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        ),
        "entry_points.txt": "\n".join(lines),
    }


def expose_test_plugin() -> None:
    """Puts the example plugin on this process's path and on its children's (``PYTHONPATH``)."""
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    folder = Path(tempfile.mkdtemp(prefix="mlgrid-test-plugin-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    dist_info = folder / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir()
    for name, text in _distribution_metadata(project).items():
        (dist_info / name).write_text(text)
    paths = [str(folder), str(PLUGIN_DIR)]
    sys.path[:0] = paths
    inherited = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([inherited] if inherited else [])])
    names = {e.name for e in entry_points(group="mlgrid.tracking_store")}
    if "file-plugin" not in names:
        raise RuntimeError(f"the test plugin's entry points are not visible: {names}")


expose_test_plugin()

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
