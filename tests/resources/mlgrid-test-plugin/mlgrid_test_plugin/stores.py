"""The ``file-plugin`` stores and artifact repository: the built-in ones over a local directory."""

from __future__ import annotations

from mlgrid_services.artifacts.repositories.file import FileArtifactRepository
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from . import SCHEME, plugin_directory


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
