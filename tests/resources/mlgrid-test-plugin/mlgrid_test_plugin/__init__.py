"""mlgrid-test-plugin: one plugin of every type, each as small as it can be.

- ``file-plugin`` tracking store and registry store: the built-in SQL stores over a SQLite
  database in the directory named by ``file-plugin:///<dir>``; new experiments keep their
  artifacts under ``file-plugin:///<dir>/artifacts``, so artifacts go through the plugin
  repository too.
- ``file-plugin`` artifact repository: the built-in file repository, for ``file-plugin:///<dir>``.
- A run context provider adding ``{"test": "tag"}`` and a request header provider adding
  ``x-mlgrid-test-plugin: 1``, both in context when ``MLGRID_TEST_PLUGIN_CONTEXT=1`` (so that
  installing this package does not change the runs and calls of unrelated code).
- ``dummy-backend``: a project backend whose runs finish at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import ProjectBackend, RequestHeaderProvider, RunContextProvider, SubmittedRun
from mlgrid_services.artifacts.repositories.file import FileArtifactRepository
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

SCHEME = "file-plugin"
#: Environment variable that puts the providers in context.
CONTEXT_ENV = "MLGRID_TEST_PLUGIN_CONTEXT"
HEADER = "x-mlgrid-test-plugin"


def plugin_directory(uri: str) -> Path:
    """The local directory of ``file-plugin:///<dir>``; anything else is refused."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.scheme.lower() != SCHEME:
        raise InvalidParameterValue(f"URI {uri!r} is not a {SCHEME}:/// URI")
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidParameterValue(
            f"URI {uri!r} is not allowed: {SCHEME} URIs name a local directory, as "
            f"{SCHEME}:///absolute/path (no host, query or fragment)"
        )
    if not path.startswith("/") or ".." in path.split("/") or "\x00" in path:
        raise InvalidParameterValue(
            f"URI {uri!r} is not allowed: the path must be absolute, without '..'"
        )
    return Path(path)


def _database(uri: str) -> str:
    directory = plugin_directory(uri)
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlgrid.db'}"


class PluginFileStore(SqlTrackingStore):
    """Tracking store for ``file-plugin:///<dir>``."""

    def __init__(self, store_uri: str, default_artifact_root: str = "") -> None:
        self.plugin_uri = store_uri
        artifacts = f"{SCHEME}://{plugin_directory(store_uri) / 'artifacts'}"
        super().__init__(_database(store_uri), artifacts)


class PluginRegistrySqlStore(SqlRegistryStore):
    """Model registry store for ``file-plugin:///<dir>`` (same database as the tracking store)."""

    def __init__(self, store_uri: str) -> None:
        self.plugin_uri = store_uri
        super().__init__(_database(store_uri))


class PluginLocalArtifactRepository(FileArtifactRepository):
    """Artifacts under ``file-plugin:///<dir>``, kept in that local directory."""

    def __init__(self, artifact_uri: str) -> None:
        plugin_directory(artifact_uri)  # refuses hosts, queries, '..'
        super().__init__(artifact_uri)


class PluginRunContextProvider(RunContextProvider):
    def in_context(self) -> bool:
        return os.environ.get(CONTEXT_ENV) == "1"

    def tags(self) -> dict[str, str]:
        return {"test": "tag"}


class PluginRequestHeaderProvider(RequestHeaderProvider):
    def in_context(self) -> bool:
        return os.environ.get(CONTEXT_ENV) == "1"

    def request_headers(self) -> dict[str, str]:
        return {HEADER: "1"}


class DummySubmittedRun(SubmittedRun):
    """A run that has already finished successfully."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def get_status(self) -> str:
        return "FINISHED"

    def cancel(self) -> None:
        pass


class PluginDummyProjectBackend(ProjectBackend):
    """Runs nothing: every submitted run is FINISHED at once."""

    def run(
        self,
        project_uri: str,
        entry_point: str,
        params: dict[str, str],
        version: str | None,
        backend_config: dict[str, Any],
        tracking_uri: str,
        experiment_id: str,
        run_id: str | None,
    ) -> SubmittedRun:
        return DummySubmittedRun(run_id or "")
