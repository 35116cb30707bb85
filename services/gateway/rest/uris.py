"""``mlflow-artifacts:/`` URIs: how REST clients see the artifacts below the proxied root.

``mlflow server --serve-artifacts`` stores experiments at ``mlflow-artifacts:/<id>``; the MLflow
client turns such a URI into ``<tracking URI>/api/2.0/mlflow-artifacts/artifacts/<path>`` and
moves the bytes through the server's proxy. mlgrid's experiments live under the deployment's
artifact root (``file:///…`` or ``s3://…``). The REST edge shows every location below that
root as ``mlflow-artifacts:/<path below the root>`` and maps such URIs back when a client
sends one, so MLflow's client uploads through the proxy exactly as it does to MLflow's server.
Locations elsewhere (an experiment created with ``s3://other-bucket/x``) pass unchanged, as
MLflow's server passes them, and the client reaches them directly.
"""

from __future__ import annotations

from mlgrid_services.common.paths import check_relative_path

from .errors import invalid

SCHEME = "mlflow-artifacts"
_PREFIX = SCHEME + ":"


class ArtifactUris:
    """Maps locations below ``root`` to ``mlflow-artifacts:/…`` and back."""

    def __init__(self, root: str | None) -> None:
        self.root = root.rstrip("/") if root else None
        self._below = self.root + "/" if self.root else None

    def to_client(self, uri: str) -> str:
        """The URI a REST client is shown for a location the store holds."""
        below = self._below
        if below is None or not uri:
            return uri
        if uri.startswith(below):
            return f"{_PREFIX}/{uri[len(below) :]}"
        if uri == self.root:
            return f"{_PREFIX}/"
        return uri

    def to_backend(self, uri: str, field: str) -> str:
        """The location a client's URI names; ``mlflow-artifacts:`` paths must stay below root."""
        if not uri.startswith(_PREFIX):
            return uri
        return self.location(self.relative(uri, field))

    def relative(self, uri: str, field: str) -> str:
        """The checked path below the root that ``mlflow-artifacts:[//host]/<path>`` names."""
        rest = uri[len(_PREFIX) :]
        if rest.startswith("//"):  # mlflow-artifacts://host:port/path: the host is the client's
            slash = rest.find("/", 2)
            rest = rest[slash:] if slash >= 0 else ""
        return check_relative_path(rest.lstrip("/"), field)

    def location(self, relative: str) -> str:
        """The store location of a checked path below the root."""
        if self.root is None:
            raise invalid(
                "this gateway serves no mlflow-artifacts root (start it with --rest-artifacts-root "
                "or under mlgrid up)"
            )
        return f"{self.root}/{relative}" if relative else self.root
