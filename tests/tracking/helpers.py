"""Small builders shared by the tracking tests."""

from __future__ import annotations

import uuid

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid_services.tracking.domain import TrackingDomain


def unique_name(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_experiment(domain: TrackingDomain, name: str | None = None, **tags: str) -> str:
    return domain.create_experiment(
        name or unique_name(), "", [common_pb2.Tag(key=k, value=v) for k, v in tags.items()]
    )


def new_run(
    domain: TrackingDomain, experiment_id: str | None = None, run_name: str = "", **tags: str
) -> tracking_pb2.Run:
    experiment_id = experiment_id or new_experiment(domain)
    return domain.create_run(
        experiment_id,
        "tester",
        0,
        [common_pb2.Tag(key=k, value=v) for k, v in tags.items()],
        run_name,
    )


def metric(key: str, value: float, timestamp: int = 1, step: int = 0) -> tracking_pb2.Metric:
    return tracking_pb2.Metric(key=key, value=value, timestamp=timestamp, step=step)


def tags_of(run: tracking_pb2.Run) -> dict[str, str]:
    return {t.key: t.value for t in run.data.tags}


def params_of(run: tracking_pb2.Run) -> dict[str, str]:
    return {p.key: p.value for p in run.data.params}


def metrics_of(run: tracking_pb2.Run) -> dict[str, tracking_pb2.Metric]:
    return {m.key: m for m in run.data.metrics}
