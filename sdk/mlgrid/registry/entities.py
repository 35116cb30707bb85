"""Registry entities as MLflow's client returns them: RegisteredModel and ModelVersion.

Tags are dicts, ``aliases`` of a RegisteredModel map alias -> version, ``status`` is MLflow's
string ("READY"), ``version`` is a string ("3") as in MLflow's protobuf-backed entities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgrid.api.registry.v1 import registry_pb2

_STATUS_NAMES = {
    registry_pb2.MODEL_VERSION_STATUS_PENDING_REGISTRATION: "PENDING_REGISTRATION",
    registry_pb2.MODEL_VERSION_STATUS_FAILED_REGISTRATION: "FAILED_REGISTRATION",
    registry_pb2.MODEL_VERSION_STATUS_READY: "READY",
}


@dataclass
class ModelVersion:
    """One version of a registered model."""

    name: str
    version: str
    creation_timestamp: int = 0
    last_updated_timestamp: int = 0
    description: str = ""
    user_id: str = ""
    current_stage: str = "None"
    source: str = ""
    run_id: str = ""
    status: str = "READY"
    status_message: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    run_link: str = ""
    aliases: list[str] = field(default_factory=list)

    @classmethod
    def from_proto(cls, proto: registry_pb2.ModelVersion) -> ModelVersion:
        return cls(
            name=proto.name,
            version=proto.version,
            creation_timestamp=proto.creation_timestamp,
            last_updated_timestamp=proto.last_updated_timestamp,
            description=proto.description,
            user_id=proto.user_id,
            current_stage=proto.current_stage,
            source=proto.source,
            run_id=proto.run_id,
            status=_STATUS_NAMES.get(proto.status, "UNSPECIFIED"),
            status_message=proto.status_message,
            tags={t.key: t.value for t in proto.tags},
            run_link=proto.run_link,
            aliases=list(proto.aliases),
        )


@dataclass
class RegisteredModel:
    """A registered model with its tags, aliases and latest version per stage."""

    name: str
    creation_timestamp: int = 0
    last_updated_timestamp: int = 0
    description: str = ""
    latest_versions: list[ModelVersion] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, proto: registry_pb2.RegisteredModel) -> RegisteredModel:
        return cls(
            name=proto.name,
            creation_timestamp=proto.creation_timestamp,
            last_updated_timestamp=proto.last_updated_timestamp,
            description=proto.description,
            latest_versions=[ModelVersion.from_proto(v) for v in proto.latest_versions],
            tags={t.key: t.value for t in proto.tags},
            aliases={a.alias: a.version for a in proto.aliases},
        )
