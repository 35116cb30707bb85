"""MLflow's artifact repository for ``mlgrid-artifacts://host:port/<storage URI>``.

Bytes go through mlgrid's artifacts service (behind the gateway the URI names), so a remote
``mlflow`` client reads and writes the server's ``file://`` roots and object stores without
access or credentials of its own. Paths are checked by the artifacts service, not here.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from mlflow.entities import FileInfo
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from mlgrid.client import Client

from .clients import client_for
from .errors import mlflow_errors
from .uris import split_artifact_uri


class MlgridArtifactRepository(ArtifactRepository):
    """An artifact root stored by mlgrid, reached through its gateway."""

    @mlflow_errors
    def __init__(
        self,
        artifact_uri: str,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        **_: Any,
    ) -> None:
        gateway, self._storage_uri = split_artifact_uri(artifact_uri)
        self._client: Client = client_for(gateway)
        super().__init__(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)

    @mlflow_errors
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        self._client.log_artifact_at(self._storage_uri, local_file, artifact_path)

    @mlflow_errors
    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        self._client.log_artifacts_at(self._storage_uri, local_dir, artifact_path)

    @mlflow_errors
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        found = self._client.list_artifacts_at(self._storage_uri, path)
        return [FileInfo(f.path, f.is_dir, f.file_size) for f in found]

    @mlflow_errors
    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        # One streamed (and, for directories, parallel) download instead of MLflow's
        # list-then-fetch walk; the result lands where MLflow's would: dst_path/artifact_path.
        return self._client.download_artifacts_at(self._storage_uri, artifact_path, dst_path)

    @mlflow_errors
    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        # MLflow names the exact local file; the SDK downloads below a directory, so the file
        # is fetched next to its destination and moved into place.
        parent = os.path.dirname(os.path.abspath(local_path))
        os.makedirs(parent, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=parent) as scratch:
            fetched = self._client.download_artifacts_at(
                self._storage_uri, remote_file_path, scratch
            )
            os.replace(fetched, local_path)

    @mlflow_errors
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        self._client.delete_artifacts_at(self._storage_uri, artifact_path)
