"""The registry service over a real gRPC server on port 0: validation, errors, routing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.registry.v1 import registry_service_pb2 as pb
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid.protocol import STORE_URI_METADATA
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The registry service alone (no gateway): (target, store URI)."""
    store = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"
    app = create_service_app("registry", ServiceConfig(backend_store_uri=store))
    running = start_server(app.services)
    yield f"127.0.0.1:{running.port}", store
    running.stop(grace=0.5)
    app.close()


@pytest.fixture(scope="module")
def client(service: tuple[str, str]) -> Client:
    return Client(f"grpc://{service[0]}")


@pytest.fixture
def model(client: Client, request: pytest.FixtureRequest) -> str:
    name = f"{request.node.originalname}-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    client.create_model_version(name, "s3://bucket/model/1")
    return name


def test_errors_keep_their_codes_across_the_wire(client: Client, model: str) -> None:
    with pytest.raises(ResourceAlreadyExists):
        client.create_registered_model(model)
    with pytest.raises(ResourceDoesNotExist, match="version=9"):
        client.get_model_version(model, 9)


@pytest.mark.parametrize("alias", ["latest", "LATEST", "Latest", "v1", "V12", "v0"])
def test_reserved_aliases_are_refused(client: Client, model: str, alias: str) -> None:
    with pytest.raises(InvalidParameterValue, match="reserved"):
        client.set_registered_model_alias(model, alias, 1)


@pytest.mark.parametrize("alias", ["", "has space", "dot.ted", "slash/ed", "x" * 256, "a@b"])
def test_malformed_aliases_are_refused(client: Client, model: str, alias: str) -> None:
    with pytest.raises(InvalidParameterValue, match="alias"):
        client.set_registered_model_alias(model, alias, 1)
    assert client.get_registered_model(model).aliases == {}


@pytest.mark.parametrize("alias", ["champion", "v1beta", "latest-good", "A_b-9", "x" * 255])
def test_wellformed_aliases_are_accepted(client: Client, model: str, alias: str) -> None:
    client.set_registered_model_alias(model, alias, "1")
    assert client.get_model_version_by_alias(model, alias).version == "1"
    assert client.get_registered_model(model).aliases == {alias: "1"}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("production", "Production"),
        ("STAGING", "Staging"),
        ("none", "None"),
        ("Archived", "Archived"),
    ],
)
def test_stages_are_case_insensitive(client: Client, model: str, given: str, stored: str) -> None:
    assert client.transition_model_version_stage(model, 1, given).current_stage == stored
    assert [v.version for v in client.get_latest_versions(model, [given.lower()])] == ["1"]


def test_unknown_stage_is_refused_with_the_allowed_list(client: Client, model: str) -> None:
    with pytest.raises(InvalidParameterValue, match="None, Staging, Production, Archived"):
        client.transition_model_version_stage(model, 1, "Prod")


@pytest.mark.parametrize("version", ["abc", "0", "-1", "1.5", ""])
def test_malformed_version_numbers_are_refused(client: Client, model: str, version: str) -> None:
    with pytest.raises(InvalidParameterValue, match="version"):
        client.get_model_version(model, version)


@pytest.mark.parametrize("name", ["", "a/b", "a:b", "x" * 257])
def test_malformed_model_names_are_refused(client: Client, name: str) -> None:
    with pytest.raises(InvalidParameterValue, match="name"):
        client.create_registered_model(name)


def test_tag_keys_and_values_follow_the_limits(client: Client, model: str) -> None:
    with pytest.raises(InvalidParameterValue, match="key"):
        client.set_registered_model_tag(model, "../escape", "v")
    with pytest.raises(InvalidParameterValue, match="100000"):
        client.set_model_version_tag(model, 1, "big", "x" * 100_001)
    client.set_model_version_tag(model, 1, "big", "x" * 100_000)
    assert len(client.get_model_version(model, 1).tags["big"]) == 100_000


def test_page_sizes_are_bounded(client: Client) -> None:
    with pytest.raises(InvalidParameterValue, match="1000"):
        client.search_registered_models(max_results=1001)
    with pytest.raises(InvalidParameterValue, match="200000"):
        client.search_model_versions(max_results=200_001)


def test_version_tag_calls_may_name_a_stage(client: Client, model: str) -> None:
    client.transition_model_version_stage(model, 1, "Staging")
    client.set_model_version_tag(model, key="checked", value="yes", stage="Staging")
    assert client.get_model_version(model, 1).tags == {"checked": "yes"}
    client.delete_model_version_tag(model, key="checked", stage="staging")
    assert client.get_model_version(model, 1).tags == {}


def test_run_sources_need_a_route_to_tracking(client: Client, model: str) -> None:
    # This service was started without a gateway, so it cannot look runs up: it says so.
    with pytest.raises(Exception, match="gateway_target"):
        client.create_model_version(model, "runs:/0123456789abcdef0123456789abcdef/model")


def test_calls_naming_the_served_store_are_served(service: tuple[str, str], model: str) -> None:
    target, store = service
    with grpc.insecure_channel(target) as channel:
        get = channel.unary_unary(
            "/mlgrid.api.registry.v1.RegistryService/GetRegisteredModel",
            request_serializer=pb.GetRegisteredModelRequest.SerializeToString,
            response_deserializer=pb.GetRegisteredModelResponse.FromString,
        )
        found = get(
            pb.GetRegisteredModelRequest(name=model), metadata=[(STORE_URI_METADATA, store)]
        )
        assert found.registered_model.name == model
        with pytest.raises(grpc.RpcError) as refused:
            get(
                pb.GetRegisteredModelRequest(name=model),
                metadata=[(STORE_URI_METADATA, f"sqlite:///{Path('/tmp/elsewhere.db')}")],
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not served here" in (refused.value.details() or "")
