"""Artifact methods of :class:`mlgrid.client.Client` (log_artifact, list_artifacts, ...)."""


class ArtifactsClientMixin:
    """Mixed into Client; uses ``self._transport`` and ``self.get_run``."""
