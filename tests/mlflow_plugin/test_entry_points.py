"""MLflow finds the plugin through its own entry-point groups, and mlgrid's plugin loading keeps
working with MLflow imported in the same process."""

from __future__ import annotations

import importlib_metadata  # the backport mlflow uses; importing it adds its finder to sys.meta_path
import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking._model_registry.utils import _get_store as get_registry_store
from mlflow.tracking._tracking_service.utils import _get_store as get_tracking_store

from mlgrid.mlflow_plugin.artifact_repository import MlgridArtifactRepository
from mlgrid.mlflow_plugin.registry_store import MlgridRegistryStore
from mlgrid.mlflow_plugin.tracking_store import MlgridTrackingStore
from mlgrid.plugins.registry import SchemeRegistry


def test_mlflow_builds_the_plugins_stores_and_repository_for_mlgrid_uris():
    for scheme in ("mlgrid", "mlgrids"):
        assert isinstance(get_tracking_store(f"{scheme}://127.0.0.1:1"), MlgridTrackingStore)
        assert isinstance(get_registry_store(f"{scheme}://127.0.0.1:1"), MlgridRegistryStore)
        repo = get_artifact_repository(f"{scheme}-artifacts://127.0.0.1:1/file:///srv/a")
        assert isinstance(repo, MlgridArtifactRepository)


def test_a_malformed_mlgrid_uri_is_an_mlflow_error_naming_the_expected_form():
    with pytest.raises(MlflowException, match="mlgrid://host:port"):
        get_tracking_store("mlgrid://127.0.0.1")


def test_mlgrid_loads_entry_points_whatever_metadata_finder_found_them():
    assert any(f.__class__.__module__.startswith("importlib_metadata") for f in _finders())
    registry: SchemeRegistry[object] = SchemeRegistry("mlflow.tracking_store", "tracking store")
    assert registry.get("mlgrid") is MlgridTrackingStore


def _finders():
    import sys

    assert importlib_metadata  # imported for its side effect
    return sys.meta_path
