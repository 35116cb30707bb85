"""Artifacts on the client side, like MLflow's ``mlflow.artifacts``.

``download_artifacts``, ``list_artifacts``, ``load_text``, ``load_dict`` and ``load_image`` take
any artifact URI: ``runs:/<run_id>/<path>`` (resolved through the tracking service to the run's
``artifact_uri``), ``models:/…`` (resolved through the registry), or a storage URI
(``file:///…``, ``s3://…``, a plugin's) served by the artifacts service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlgrid.artifacts.repository import ArtifactRepository, FileInfo
from mlgrid.exceptions import InvalidParameterValue

if TYPE_CHECKING:
    from mlgrid.client import Client

__all__ = [
    "ArtifactRepository",
    "FileInfo",
    "download_artifacts",
    "list_artifacts",
    "load_dict",
    "load_image",
    "load_text",
    "resolve_artifact_uri",
]

RUNS_SCHEME = "runs:/"


def _client(tracking_uri: str | None) -> Client:
    if tracking_uri is None:
        from mlgrid import fluent

        return fluent.state.client()
    from mlgrid.client import Client

    return Client(tracking_uri)


def resolve_artifact_uri(artifact_uri: str, client: Client) -> tuple[str, str]:
    """(storage root URI, path below it) for ``runs:/``, ``models:/`` or storage URIs."""
    seen = 0
    while artifact_uri.startswith("models:/"):
        from mlgrid.models import resolve_model_uri

        artifact_uri = resolve_model_uri(artifact_uri, client)
        seen += 1
        if seen > 4:
            raise InvalidParameterValue(f"artifact_uri {artifact_uri!r} resolves in a loop")
    if artifact_uri.startswith(RUNS_SCHEME):
        rest = artifact_uri[len(RUNS_SCHEME) :].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not run_id:
            raise InvalidParameterValue(
                f"artifact_uri {artifact_uri!r} is not allowed: use runs:/<run_id>/<path>"
            )
        return str(client.get_run(run_id).info.artifact_uri), path.strip("/")
    return artifact_uri, ""


def _resolve(
    artifact_uri: str | None,
    run_id: str | None,
    artifact_path: str | None,
    client: Client,
) -> tuple[str, str]:
    if (artifact_uri is None) == (run_id is None):
        raise InvalidParameterValue("pass exactly one of artifact_uri or run_id")
    if run_id is not None:
        root = str(client.get_run(run_id).info.artifact_uri)
        return root, (artifact_path or "").strip("/")
    if artifact_path is not None:
        raise InvalidParameterValue("artifact_path goes with run_id; put the path in artifact_uri")
    assert artifact_uri is not None
    return resolve_artifact_uri(artifact_uri, client)


def download_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Downloads a file or directory to ``dst_path`` (a new temp dir when None); returns the
    local path."""
    client = _client(tracking_uri)
    root, path = _resolve(artifact_uri, run_id, artifact_path, client)
    # A storage URI names what to fetch by its last segment (dst_path/<that name>, as MLflow);
    # runs:/ and models:/ URIs and run ids name a path below the root.
    plain = artifact_uri is not None and root == artifact_uri
    return client.download_artifacts_at(root, path, dst_path, keep_root_name=plain)


def list_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    tracking_uri: str | None = None,
) -> list[FileInfo]:
    """The direct children of a directory artifact."""
    client = _client(tracking_uri)
    root, path = _resolve(artifact_uri, run_id, artifact_path, client)
    return client.list_artifacts_at(root, path)


def _read(artifact_uri: str, tracking_uri: str | None = None) -> tuple[bytes, str]:
    client = _client(tracking_uri)
    root, path = resolve_artifact_uri(artifact_uri, client)
    return client.read_artifact_at(root, path), path or root


def load_text(artifact_uri: str, tracking_uri: str | None = None) -> str:
    """The text (UTF-8) of one artifact file."""
    data, _ = _read(artifact_uri, tracking_uri)
    return data.decode("utf-8")


def load_dict(artifact_uri: str, tracking_uri: str | None = None) -> Any:
    """The JSON or YAML content of one artifact file."""
    from mlgrid.artifacts.client import parse_dict

    data, name = _read(artifact_uri, tracking_uri)
    return parse_dict(data, name)


def load_image(artifact_uri: str, tracking_uri: str | None = None) -> Any:
    """One image artifact as a PIL image."""
    import io

    from PIL import Image

    data, _ = _read(artifact_uri, tracking_uri)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
