"""MLflow's permission levels, ordered, and what each allows.

READ reads; USE also uses a resource (MLflow: reads it to run or serve a model; here the same as
READ for calls, kept so grants made for MLflow mean the same); EDIT also writes (logs runs,
metrics, tags, new versions); MANAGE also deletes and grants. NO_PERMISSIONS grants nothing,
and as a user's grant it overrides a more generous default.
"""

from __future__ import annotations

import enum

from mlgrid.exceptions import InvalidParameterValue


class Permission(enum.IntEnum):
    """A permission level; a higher value includes every lower one."""

    NO_PERMISSIONS = 0
    READ = 1
    USE = 2
    EDIT = 3
    MANAGE = 4

    def allows(self, needed: Permission) -> bool:
        return self >= needed


#: The names accepted in requests and on the command line.
PERMISSION_NAMES = tuple(p.name for p in Permission)


def parse_permission(value: str, field: str = "permission") -> Permission:
    """The level named ``value`` (case-insensitive); a clear error naming ``field`` otherwise."""
    try:
        return Permission[value.strip().upper()]
    except KeyError:
        raise InvalidParameterValue(
            f"{field} {value[:40]!r} is not a permission; use one of {', '.join(PERMISSION_NAMES)}"
        ) from None


class ResourceKind(str, enum.Enum):
    """What a grant is about: the proto's ResourceType values, by the names stored."""

    EXPERIMENT = "experiment"
    REGISTERED_MODEL = "registered_model"

    @property
    def shown(self) -> str:
        return self.value.replace("_", " ")


#: Each kind's ResourceType number in the protos (auth/v1).
KIND_NUMBERS = {ResourceKind.EXPERIMENT: 1, ResourceKind.REGISTERED_MODEL: 2}
_KINDS = {number: kind for kind, number in KIND_NUMBERS.items()}


def parse_kind(value: int) -> ResourceKind:
    """The proto's ResourceType number as a kind; a clear error for UNSPECIFIED or unknown."""
    if value not in _KINDS:
        raise InvalidParameterValue(
            f"resource_type {value} is not a resource type; use RESOURCE_TYPE_EXPERIMENT or "
            "RESOURCE_TYPE_REGISTERED_MODEL"
        )
    return _KINDS[value]
