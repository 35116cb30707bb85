"""The SDK's registry entities carry every field of the protobuf they come from."""

from __future__ import annotations

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.registry.entities import ModelVersion


def test_model_version_from_proto_maps_every_field_to_its_own_name() -> None:
    proto = registry_pb2.ModelVersion(
        name="fraud",
        version="3",
        creation_timestamp=11,
        last_updated_timestamp=22,
        description="retrained",
        user_id="ana",
        current_stage="Staging",
        source="s3://b/model",
        run_id="r1",
        status=registry_pb2.MODEL_VERSION_STATUS_FAILED_REGISTRATION,
        status_message="disk full",
        tags=[common_pb2.Tag(key="k", value="v")],
        run_link="http://runs/r1",
        aliases=["champion", "prod"],
    )
    assert ModelVersion.from_proto(proto) == ModelVersion(
        name="fraud",
        version="3",
        creation_timestamp=11,
        last_updated_timestamp=22,
        description="retrained",
        user_id="ana",
        current_stage="Staging",
        source="s3://b/model",
        run_id="r1",
        status="FAILED_REGISTRATION",
        status_message="disk full",
        tags={"k": "v"},
        run_link="http://runs/r1",
        aliases=["champion", "prod"],
    )


def test_model_version_without_tags_or_aliases_gets_its_own_empty_containers() -> None:
    first = ModelVersion.from_proto(registry_pb2.ModelVersion(name="m", version="1"))
    second = ModelVersion.from_proto(registry_pb2.ModelVersion(name="m", version="2"))
    assert first.tags == {} and first.aliases == []
    first.tags["k"] = "v"
    first.aliases.append("a")
    assert second.tags == {} and second.aliases == []
