"""MLflow's enumerations, as MLflow spells them, mapped to the proto enums."""

from __future__ import annotations

from typing import ClassVar

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue


class RunStatus:
    """A run's state. Values are MLflow's (and the proto's) numbers; names are MLflow's strings."""

    RUNNING = 1
    SCHEDULED = 2
    FINISHED = 3
    FAILED = 4
    KILLED = 5

    _NAMES: ClassVar[dict[int, str]] = {
        1: "RUNNING",
        2: "SCHEDULED",
        3: "FINISHED",
        4: "FAILED",
        5: "KILLED",
    }
    _TERMINATED: ClassVar[frozenset[int]] = frozenset({FINISHED, FAILED, KILLED})

    @classmethod
    def to_string(cls, status: int) -> str:
        try:
            return cls._NAMES[int(status)]
        except (KeyError, ValueError):
            raise InvalidParameterValue(
                f"run status {status!r} is unknown; expected one of {sorted(cls._NAMES)}"
            ) from None

    @classmethod
    def from_string(cls, name: str) -> int:
        for number, known in cls._NAMES.items():
            if known == str(name).upper():
                return number
        raise InvalidParameterValue(
            f"run status {name!r} is unknown; expected one of {', '.join(cls.all_status())}"
        )

    @classmethod
    def is_terminated(cls, status: int | str) -> bool:
        number = cls.from_string(status) if isinstance(status, str) else int(status)
        return number in cls._TERMINATED

    @classmethod
    def all_status(cls) -> list[str]:
        return list(cls._NAMES.values())

    @classmethod
    def to_proto(cls, status: int | str) -> tracking_pb2.RunStatus.ValueType:
        number = cls.from_string(status) if isinstance(status, str) else int(status)
        cls.to_string(number)  # validates
        return tracking_pb2.RunStatus.ValueType(number)

    @classmethod
    def from_proto(cls, status: int) -> str:
        """The MLflow string of a proto status; an unset status reads as RUNNING."""
        return cls._NAMES.get(int(status), "RUNNING")


class ViewType:
    """Which lifecycle stages a listing returns (MLflow's numbers)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    _NAMES: ClassVar[dict[str, int]] = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}

    @classmethod
    def from_string(cls, view_str: str) -> int:
        key = str(view_str).strip().upper()
        if key not in cls._NAMES:
            raise InvalidParameterValue(
                f"view type {view_str!r} is unknown; expected one of {', '.join(cls._NAMES)}"
            )
        return cls._NAMES[key]

    @classmethod
    def to_string(cls, view_type: int) -> str:
        for name, number in cls._NAMES.items():
            if number == view_type:
                return name
        raise InvalidParameterValue(
            f"view type {view_type!r} is unknown; expected 1 (ACTIVE_ONLY), 2 (DELETED_ONLY) "
            "or 3 (ALL)"
        )

    @classmethod
    def to_proto(cls, view_type: int | str | None) -> common_pb2.ViewType.ValueType:
        if view_type is None:
            return common_pb2.ViewType.VIEW_TYPE_ACTIVE_ONLY
        number = cls.from_string(view_type) if isinstance(view_type, str) else int(view_type)
        cls.to_string(number)  # validates
        return common_pb2.ViewType.ValueType(number)

    @classmethod
    def from_proto(cls, view_type: int) -> int:
        return int(view_type) or cls.ACTIVE_ONLY


class LifecycleStage:
    """Whether an experiment or run is active or (soft-)deleted."""

    ACTIVE = "active"
    DELETED = "deleted"

    @classmethod
    def is_valid(cls, stage: str) -> bool:
        return stage in (cls.ACTIVE, cls.DELETED)

    @classmethod
    def view_type_to_stages(cls, view_type: int = ViewType.ALL) -> list[str]:
        stages = []
        if view_type in (ViewType.ACTIVE_ONLY, ViewType.ALL):
            stages.append(cls.ACTIVE)
        if view_type in (ViewType.DELETED_ONLY, ViewType.ALL):
            stages.append(cls.DELETED)
        return stages

    @classmethod
    def matches_view_type(cls, view_type: int, stage: str) -> bool:
        return stage in cls.view_type_to_stages(view_type)


class SourceType:
    """Values of the ``mlflow.source.type`` tag."""

    NOTEBOOK = 1
    JOB = 2
    PROJECT = 3
    LOCAL = 4
    UNKNOWN = 1000

    _NAMES: ClassVar[dict[int, str]] = {
        1: "NOTEBOOK",
        2: "JOB",
        3: "PROJECT",
        4: "LOCAL",
        1000: "UNKNOWN",
    }

    @classmethod
    def to_string(cls, source_type: int) -> str:
        return cls._NAMES.get(source_type, "UNKNOWN")

    @classmethod
    def from_string(cls, name: str) -> int:
        for number, known in cls._NAMES.items():
            if known == str(name).upper():
                return number
        raise InvalidParameterValue(
            f"source type {name!r} is unknown; expected one of {', '.join(cls._NAMES.values())}"
        )
