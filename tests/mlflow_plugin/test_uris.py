"""The plugin's URIs: gateways, and the wrapped artifact URIs MLflow is shown."""

from __future__ import annotations

import posixpath

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.mlflow_plugin.uris import (
    Gateway,
    parse_store_uri,
    split_artifact_uri,
    unwrap_artifact_uri,
    wrap_artifact_uri,
)

GATEWAY = Gateway("mlgrid", "127.0.0.1:50051")


def test_plain_and_tls_gateways_map_onto_the_sdks_grpc_and_grpcs_uris():
    assert parse_store_uri("mlgrid://127.0.0.1:50051").sdk_uri == "grpc://127.0.0.1:50051"
    assert parse_store_uri("mlgrids://mlgrid.example.com:443").sdk_uri == (
        "grpcs://mlgrid.example.com:443"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "mlgrid://127.0.0.1",
        "mlgrid://:50051",
        "mlgrid://h:50051/db",
        "mlgrid://u:p@h:1",
        "grpc://h:1",
    ],
)
def test_a_store_uri_that_is_not_exactly_a_gateway_is_refused_with_the_expected_form(uri):
    with pytest.raises(InvalidParameterValue, match="mlgrid://"):
        parse_store_uri(uri)


@pytest.mark.parametrize(
    "storage",
    ["file:///srv/art/1/abc/artifacts", "s3://bucket/prefix/1/abc/artifacts", "gs://b/k"],
)
def test_wrapping_then_unwrapping_gives_back_the_storage_uri(storage):
    wrapped = wrap_artifact_uri(GATEWAY, storage)
    assert wrapped == f"mlgrid-artifacts://127.0.0.1:50051/{storage}"
    assert unwrap_artifact_uri(wrapped) == storage


def test_paths_appended_by_mlflow_stay_below_the_storage_uri():
    wrapped = wrap_artifact_uri(GATEWAY, "s3://bucket/1/abc/artifacts")
    gateway, storage = split_artifact_uri(posixpath.join(wrapped, "model/MLmodel"))
    assert gateway == GATEWAY
    assert storage == "s3://bucket/1/abc/artifacts/model/MLmodel"


@pytest.mark.parametrize(
    ("normalised", "storage"),
    [
        ("mlgrid-artifacts://h:1/file:/srv/a", "file:///srv/a"),
        ("mlgrid-artifacts://h:1/s3:/bucket/a", "s3://bucket/a"),
    ],
)
def test_forms_left_by_path_normalisation_unwrap_to_the_same_storage_uri(normalised, storage):
    assert unwrap_artifact_uri(normalised) == storage


def test_uris_mlflow_resolves_itself_are_not_wrapped():
    for uri in ["runs:/abc/model", "models:/m/1", "", None]:
        assert wrap_artifact_uri(GATEWAY, uri) == uri
    assert unwrap_artifact_uri("s3://bucket/x") == "s3://bucket/x"


def test_tls_gateways_hand_out_tls_artifact_uris():
    tls = Gateway("mlgrids", "h:443")
    wrapped = wrap_artifact_uri(tls, "file:///a")
    assert wrapped == "mlgrids-artifacts://h:443/file:///a"
    assert split_artifact_uri(wrapped) == (tls, "file:///a")


@pytest.mark.parametrize(
    "uri",
    [
        "mlgrid-artifacts://h:1",
        "mlgrid-artifacts://h:1/no-scheme",
        "mlgrid-artifacts://h/file:///a",
    ],
)
def test_an_artifact_uri_without_gateway_or_storage_uri_is_refused(uri):
    with pytest.raises(InvalidParameterValue, match="mlgrid-artifacts://host:port"):
        split_artifact_uri(uri)
