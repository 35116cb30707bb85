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
    #: The MLflow 3 logged model the version was made from, if any.
    model_id: str | None = None

    @classmethod
    def from_proto(cls, proto: registry_pb2.ModelVersion) -> ModelVersion:
        # Positional and with empty repeated fields skipped: a search turns up to 10,000
        # versions into entities, and this was most of the client's time.
        tags = proto.tags
        aliases = proto.aliases
        return cls(
            proto.name,
            proto.version,
            proto.creation_timestamp,
            proto.last_updated_timestamp,
            proto.description,
            proto.user_id,
            proto.current_stage,
            proto.source,
            proto.run_id,
            _STATUS_NAMES.get(proto.status, "UNSPECIFIED"),
            proto.status_message,
            {t.key: t.value for t in tags} if tags else {},
            proto.run_link,
            list(aliases) if aliases else [],
            proto.model_id or None,
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
