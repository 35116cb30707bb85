"""Artifact repositories by URI scheme: the built-ins, and plugins over them.

Plugins register a class for a scheme under the ``mlgrid.artifact_repository`` entry-point group
(or at run time with ``ARTIFACT_REPOSITORIES.register(scheme, cls)``); a plugin wins over the
built-in of the same scheme. Built-ins are named by import path, so ``s3`` imports ``minio`` only
when an ``s3://`` root is first used.
"""

from __future__ import annotations

from mlgrid.artifacts.repository import ArtifactRepository
from mlgrid.plugins import SchemeRegistry

#: scheme → repository class (or "module:Class"); plugins extend and override it.
BUILTIN_REPOSITORIES: dict[str, str | type[ArtifactRepository]] = {
    "file": "mlgrid_services.artifacts.repositories.file:FileArtifactRepository",
    "s3": "mlgrid_services.artifacts.repositories.s3:S3ArtifactRepository",
}

ARTIFACT_REPOSITORIES: SchemeRegistry[ArtifactRepository] = SchemeRegistry(
    "mlgrid.artifact_repository", "artifact repository", builtins=dict(BUILTIN_REPOSITORIES)
)

__all__ = ["ARTIFACT_REPOSITORIES", "BUILTIN_REPOSITORIES"]
