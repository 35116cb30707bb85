"""MLflow's fluent artifact functions: they log to the active run, starting one if needed."""

from __future__ import annotations

import os
from typing import Any

from mlgrid.artifacts import load_dict, load_image, load_text
from mlgrid.artifacts.transfer import join_path

__all__ = [
    "get_artifact_uri",
    "load_dict",
    "load_image",
    "load_text",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_text",
]


def _run_and_client() -> tuple[str, Any]:
    from mlgrid import fluent

    return fluent.get_or_start_run().info.run_id, fluent.state.client()


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Uploads a local file (or directory) to the active run's ``artifact_path``."""
    run_id, client = _run_and_client()
    client.log_artifact(run_id, local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Uploads every file below ``local_dir`` to the active run's ``artifact_path``."""
    run_id, client = _run_and_client()
    client.log_artifacts(run_id, local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    """Stores ``text`` as the active run's ``artifact_file``."""
    run_id, client = _run_and_client()
    client.log_text(run_id, text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str) -> None:
    """Stores ``dictionary`` as JSON, or YAML when ``artifact_file`` ends in .yaml/.yml."""
    run_id, client = _run_and_client()
    client.log_dict(run_id, dictionary, artifact_file)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None
) -> None:
    """Stores a matplotlib (or plotly, .html) figure as ``artifact_file``."""
    run_id, client = _run_and_client()
    client.log_figure(run_id, figure, artifact_file, save_kwargs=save_kwargs)


def log_image(image: Any, artifact_file: str) -> None:
    """Stores a numpy array or PIL image as ``artifact_file``."""
    run_id, client = _run_and_client()
    client.log_image(run_id, image, artifact_file)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """The active run's artifact URI, or that of ``artifact_path`` inside it."""
    from mlgrid import fluent

    root = str(fluent.get_or_start_run().info.artifact_uri)
    path = join_path(artifact_path)
    return f"{root.rstrip('/')}/{path}" if path else root
