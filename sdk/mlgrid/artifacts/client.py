"""The artifacts part of :class:`mlgrid.client.Client` (log_artifact, list_artifacts, ...).

Names and signatures are MLflow's ``MlflowClient`` ones. Run-based methods resolve the run's
``artifact_uri`` through the tracking service; the ``*_at`` helpers work on any artifact URI.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.artifacts import transfer
from mlgrid.artifacts.repository import FileInfo
from mlgrid.artifacts.transfer import Progress, join_path
from mlgrid.exceptions import InvalidParameterValue

if TYPE_CHECKING:
    from mlgrid.transport import Transport


#: Runs whose artifact root a client remembers (see ``ArtifactsClient.run_artifact_uri``).
_MAX_CACHED_RUNS = 10_000


def serialize_dict(dictionary: Any, artifact_file: str) -> bytes:
    """JSON, or YAML when ``artifact_file`` ends in .yaml/.yml (as MLflow's log_dict)."""
    if artifact_file.lower().endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_dump(dictionary, default_flow_style=False, sort_keys=False).encode()
    return json.dumps(dictionary, indent=2).encode()


def parse_dict(data: bytes, artifact_file: str) -> Any:
    """The inverse of :func:`serialize_dict` (YAML is a superset of JSON)."""
    if artifact_file.lower().endswith(".json"):
        return json.loads(data)
    import yaml

    return yaml.safe_load(data)


class ArtifactsClient:
    """Uploads, downloads and listings, by run id or by any artifact URI (the ``*_at`` methods).

    Built from a transport and a function giving a run's artifact root (the client asks the
    tracking service); ``Client`` exposes each method under the same name.
    """

    def __init__(self, transport: Transport, run_artifact_root: Callable[[str], str]) -> None:
        self._transport = transport
        self._run_artifact_root = run_artifact_root
        self._run_artifact_uris: dict[str, str] = {}

    def run_artifact_uri(self, run_id: str) -> str:
        """The run's artifact root. A run's artifact_uri never changes once the run exists, so
        it is remembered: repeated artifact calls for a run cost one tracking call, not one each."""
        if not run_id:
            raise InvalidParameterValue("run_id '' is not allowed: name the run")
        cache = self._run_artifact_uris
        uri = cache.get(run_id)
        if uri is None:
            uri = self._run_artifact_root(run_id)
            if len(cache) >= _MAX_CACHED_RUNS:
                cache.clear()
            cache[run_id] = uri
        return uri

    # -- MLflow's MlflowClient methods ---------------------------------------------------------

    def log_artifact(
        self,
        run_id: str,
        local_path: str | os.PathLike[str],
        artifact_path: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Uploads one local file (or directory) to the run's ``artifact_path``."""
        if Path(local_path).is_dir():
            self.log_artifacts(run_id, local_path, join_path(artifact_path, Path(local_path).name))
            return
        self.log_artifact_at(self.run_artifact_uri(run_id), local_path, artifact_path, progress)

    def log_artifacts(
        self,
        run_id: str,
        local_dir: str | os.PathLike[str],
        artifact_path: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Uploads every file below ``local_dir`` (in parallel) to the run's ``artifact_path``."""
        self.log_artifacts_at(self.run_artifact_uri(run_id), local_dir, artifact_path, progress)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """Direct children of ``path`` in the run's artifacts (paths relative to the run root)."""
        return self.list_artifacts_at(self.run_artifact_uri(run_id), path)

    def download_artifacts(
        self,
        run_id: str,
        path: str,
        dst_path: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Downloads a run's file or directory to ``dst_path/<path>``; returns the local path."""
        return self.download_artifacts_at(self.run_artifact_uri(run_id), path, dst_path, progress)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Stores ``text`` (UTF-8) as the run's ``artifact_file``."""
        self.log_bytes_at(self.run_artifact_uri(run_id), text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        """Stores ``dictionary`` as JSON, or YAML for .yaml/.yml names."""
        data = serialize_dict(dictionary, artifact_file)
        self.log_bytes_at(self.run_artifact_uri(run_id), data, artifact_file)

    def log_figure(
        self,
        run_id: str,
        figure: Any,
        artifact_file: str,
        *,
        save_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Stores a matplotlib figure (or a plotly one, as .html) as ``artifact_file``."""
        from mlgrid.artifacts.media import figure_bytes

        data = figure_bytes(figure, artifact_file, save_kwargs or {})
        self.log_bytes_at(self.run_artifact_uri(run_id), data, artifact_file)

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> None:
        """Stores a numpy array or PIL image as ``artifact_file`` (format from the extension)."""
        from mlgrid.artifacts.media import image_bytes

        data = image_bytes(image, artifact_file)
        self.log_bytes_at(self.run_artifact_uri(run_id), data, artifact_file)

    # -- the same on any artifact URI ----------------------------------------------------------

    def log_artifact_at(
        self,
        artifact_uri: str,
        local_path: str | os.PathLike[str],
        artifact_path: str | None = None,
        progress: Progress | None = None,
    ) -> FileInfo:
        """Uploads one local file to ``artifact_path/<its name>`` below ``artifact_uri``."""
        name = Path(local_path).name
        target = join_path(artifact_path, name)
        return transfer.upload_file(self._transport, artifact_uri, local_path, target, progress)

    def log_artifacts_at(
        self,
        artifact_uri: str,
        local_dir: str | os.PathLike[str],
        artifact_path: str | None = None,
        progress: Progress | None = None,
    ) -> list[FileInfo]:
        """Uploads a local directory tree below ``artifact_uri`` with parallel uploads."""
        return transfer.upload_dir(
            self._transport, artifact_uri, local_dir, artifact_path, progress
        )

    def log_bytes_at(self, artifact_uri: str, data: bytes, artifact_file: str) -> FileInfo:
        """Stores ``data`` as ``artifact_file`` below ``artifact_uri``."""
        return transfer.upload_bytes(self._transport, artifact_uri, artifact_file, data)

    def list_artifacts_at(self, artifact_uri: str, path: str | None = None) -> list[FileInfo]:
        """Direct children of ``path`` below ``artifact_uri``."""
        return transfer.list_artifacts(self._transport, artifact_uri, path or "")

    def download_artifacts_at(
        self,
        artifact_uri: str,
        path: str | None = None,
        dst_path: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
        *,
        keep_root_name: bool = False,
    ) -> str:
        """Downloads ``path`` below ``artifact_uri`` to ``dst_path/<path>`` (a new temp dir when
        ``dst_path`` is None) and returns the local path, as MLflow's repositories do.

        With an empty ``path`` a directory root lands in ``dst_path`` itself (or, with
        ``keep_root_name``, in ``dst_path/<root name>``); a root that is a single file lands in
        ``dst_path/<its name>``.
        """
        # "." (and "./x") name the root as in MLflow's repositories.
        relative = posixpath.normpath(path).strip("/") if path else ""
        relative = "" if relative == "." else relative
        base = Path(dst_path) if dst_path is not None else transfer.fresh_download_dir()
        base.mkdir(parents=True, exist_ok=True)
        if relative:
            local = base.joinpath(*relative.split("/"))
        elif keep_root_name:
            local = base / posixpath.basename(artifact_uri.rstrip("/"))
        else:
            local = base
        return transfer.download(
            self._transport,
            artifact_uri,
            relative,
            local,
            progress,
            file_target=None if relative else (lambda name: base / name),
        )

    def read_artifact_at(self, artifact_uri: str, path: str | None = None) -> bytes:
        """The bytes of one file below ``artifact_uri``."""
        return transfer.read_bytes(self._transport, artifact_uri, (path or "").strip("/"))

    def delete_artifacts_at(self, artifact_uri: str, path: str | None = None) -> None:
        """Deletes a file or subtree below ``artifact_uri`` (everything when ``path`` is empty)."""
        request = pb.DeleteArtifactsRequest(artifact_uri=artifact_uri, path=path or "")
        self._transport.call(self._transport.artifacts_for(artifact_uri).DeleteArtifacts, request)

    def get_presigned_url_at(
        self, artifact_uri: str, path: str, method: str = "GET", expires_in: int = 900
    ) -> str:
        """A presigned GET or PUT URL for ``path`` (object stores only)."""
        methods = {"GET": pb.PRESIGNED_URL_METHOD_GET, "PUT": pb.PRESIGNED_URL_METHOD_PUT}
        if method.upper() not in methods:
            raise InvalidParameterValue(f"method {method!r} is not allowed: use GET or PUT")
        request = pb.GetPresignedUrlRequest(
            artifact_uri=artifact_uri,
            path=path,
            method=methods[method.upper()],
            expires_in_seconds=expires_in,
        )
        stub = self._transport.artifacts_for(artifact_uri)
        url: str = self._transport.call(stub.GetPresignedUrl, request).url
        return url
