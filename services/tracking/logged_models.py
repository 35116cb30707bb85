"""MLflow 3's logged models in the tracking domain: validation and defaults, then the store.

Like the rest of the domain layer, everything that can be checked without the database is
checked here first, so a rejected request writes nothing. Metric points linked to a model
(``model_id`` set) are written to the model's metrics before the run's own points: a point that
names an unknown model is refused before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mlgrid import limits
from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.store.logged_model_filter import (
    check_logged_model_filter,
    parse_logged_model_order_by,
)
from mlgrid.store.tracking_store import AbstractTrackingStore
from mlgrid_services.common import validation as v

from .names import generate_run_name

#: Characters MLflow refuses in a logged model's name.
_BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w-]{0,35}$")
#: Statuses a model can be finalized to (MLflow accepts any but UNSPECIFIED).
_FINAL_STATUSES = {
    tracking_pb2.LOGGED_MODEL_STATUS_PENDING,
    tracking_pb2.LOGGED_MODEL_STATUS_READY,
    tracking_pb2.LOGGED_MODEL_STATUS_UPLOAD_FAILED,
}


def validate_model_id(model_id: str, field: str = "model_id") -> None:
    if not _MODEL_ID.match(model_id or ""):
        raise InvalidParameterValue(
            f"Invalid {field} {v.shorten(model_id)}: must match {_MODEL_ID.pattern} (a "
            "server-made id such as m-<32 hexadecimal characters>)"
        )


def _validate_name(name: str) -> None:
    bad = [c for c in _BAD_NAME_CHARS if c in name]
    if bad or not name.strip():
        raise InvalidParameterValue(
            f"Invalid logged model name {v.shorten(name)}: a name must be a non-empty string "
            f"without any of {' '.join(_BAD_NAME_CHARS)}"
        )
    v.validate_length(name, limits.MAX_LOGGED_MODEL_NAME_LENGTH, "logged model name")


def _validate_params(params: Sequence[tracking_pb2.Param]) -> None:
    seen: set[str] = set()
    for p in params:
        v.validate_key(p.key, "param key")
        v.validate_length(
            p.value, limits.MAX_LOGGED_MODEL_VALUE_LENGTH, f"value of param {p.key!r}"
        )
        if p.key in seen:
            raise InvalidParameterValue(
                f"Invalid params: key {p.key!r} appears more than once; give each key once"
            )
        seen.add(p.key)


def _validate_tags(tags: Sequence[common_pb2.Tag]) -> None:
    for tag in tags:
        v.validate_key(tag.key, "tag key")
        v.validate_length(
            tag.value, limits.MAX_LOGGED_MODEL_VALUE_LENGTH, f"value of tag {tag.key!r}"
        )


def check_metric_links(metrics: Sequence[tracking_pb2.Metric]) -> list[tracking_pb2.Metric]:
    """The points of ``metrics`` linked to a model, their model id and dataset checked."""
    linked = [m for m in metrics if m.model_id]
    for m in linked:
        validate_model_id(m.model_id, f"model_id of metric {m.key!r}")
        v.validate_length(m.dataset_name, limits.MAX_METRIC_DATASET_NAME_LENGTH, "dataset_name")
        v.validate_length(
            m.dataset_digest, limits.MAX_METRIC_DATASET_DIGEST_LENGTH, "dataset_digest"
        )
    return linked


class LoggedModelsDomain:
    """The logged-model operations, over ``store``."""

    store: AbstractTrackingStore

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        model_type: str,
        source_run_id: str,
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
    ) -> tracking_pb2.LoggedModel:
        experiment_id = experiment_id or "0"
        v.validate_experiment_id(experiment_id)
        if name:
            _validate_name(name)
        v.validate_length(model_type, limits.MAX_LOGGED_MODEL_TYPE_LENGTH, "model_type")
        if source_run_id:
            v.validate_run_id(source_run_id, "source_run_id")
        _validate_params(params)
        _validate_tags(tags)
        return self.store.create_logged_model(
            experiment_id, name or generate_run_name(), source_run_id, model_type, params, tags
        )

    def get_logged_model(self, model_id: str, allow_deleted: bool) -> tracking_pb2.LoggedModel:
        validate_model_id(model_id)
        return self.store.get_logged_model(model_id, allow_deleted)

    def finalize_logged_model(self, model_id: str, status: int) -> tracking_pb2.LoggedModel:
        validate_model_id(model_id)
        if status not in _FINAL_STATUSES:
            raise InvalidParameterValue(
                f"Invalid status {status}: expected LOGGED_MODEL_STATUS_READY (2) or "
                "LOGGED_MODEL_STATUS_UPLOAD_FAILED (3) (or PENDING (1))"
            )
        return self.store.finalize_logged_model(model_id, status)

    def delete_logged_model(self, model_id: str) -> None:
        validate_model_id(model_id)
        self.store.delete_logged_model(model_id)

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        datasets: Sequence[pb.LoggedModelDatasetFilter],
        max_results: int,
        order_by: Sequence[pb.LoggedModelOrderBy],
        page_token: str,
    ) -> tuple[list[tracking_pb2.LoggedModel], str]:
        if not experiment_ids:
            raise InvalidParameterValue(
                "Invalid experiment_ids: at least one experiment id is required"
            )
        for experiment_id in experiment_ids:
            v.validate_experiment_id(experiment_id, "experiment_ids")
        if max_results < 0 or max_results > limits.SEARCH_LOGGED_MODELS_MAX:
            raise InvalidParameterValue(
                f"Invalid max_results {max_results}: must be between 1 and "
                f"{limits.SEARCH_LOGGED_MODELS_MAX} (0 means {limits.SEARCH_LOGGED_MODELS_DEFAULT})"
            )
        size = max_results or limits.SEARCH_LOGGED_MODELS_DEFAULT
        check_logged_model_filter(filter_string)
        scopes = []
        for d in datasets:
            if not d.dataset_name:
                raise InvalidParameterValue(
                    "Invalid datasets: every dataset needs a dataset_name (dataset_digest is "
                    "optional)"
                )
            v.validate_length(d.dataset_name, limits.MAX_METRIC_DATASET_NAME_LENGTH, "dataset_name")
            v.validate_length(
                d.dataset_digest, limits.MAX_METRIC_DATASET_DIGEST_LENGTH, "dataset_digest"
            )
            scopes.append((d.dataset_name, d.dataset_digest))
        orders = parse_logged_model_order_by(
            [
                (
                    o.field_name,
                    o.ascending if o.HasField("ascending") else True,
                    o.dataset_name,
                    o.dataset_digest,
                )
                for o in order_by
            ]
        )
        return self.store.search_logged_models(
            list(experiment_ids), filter_string, scopes, size, orders, page_token
        )

    def set_logged_model_tags(
        self, model_id: str, tags: Sequence[common_pb2.Tag]
    ) -> tracking_pb2.LoggedModel:
        validate_model_id(model_id)
        _validate_tags(tags)
        return self.store.set_logged_model_tags(model_id, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        validate_model_id(model_id)
        v.validate_key(key, "tag_key")
        self.store.delete_logged_model_tag(model_id, key)

    def log_logged_model_params(self, model_id: str, params: Sequence[tracking_pb2.Param]) -> None:
        validate_model_id(model_id)
        _validate_params(params)
        self.store.log_logged_model_params(model_id, params)

    def log_outputs(self, run_id: str, models: Sequence[tracking_pb2.ModelOutput]) -> None:
        v.validate_run_id(run_id)
        for model in models:
            validate_model_id(model.model_id, "models.model_id")
            if model.step < 0:
                raise InvalidParameterValue(
                    f"Invalid step {model.step} of model output {model.model_id!r}: must be >= 0"
                )
        self.store.log_outputs(run_id, models)

    def log_model_inputs(self, run_id: str, models: Sequence[tracking_pb2.ModelInput]) -> None:
        for model in models:
            validate_model_id(model.model_id, "models.model_id")
        if models:
            self.store.log_model_inputs(run_id, models)
