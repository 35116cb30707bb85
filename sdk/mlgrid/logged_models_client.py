"""The logged-model part of :class:`mlgrid.client.Client`: MLflow 3's logged-model methods with
MlflowClient's names and signatures (``create_logged_model``, ``finalize_logged_model``, ``search_logged_models``, …).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as rpc
from mlgrid.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus, PagedList
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.transport import Transport

__all__ = ["LoggedModelsClient"]


def _tags(tags: Mapping[str, Any] | None) -> list[common_pb2.Tag]:
    return [common_pb2.Tag(key=str(k), value=str(v)) for k, v in (tags or {}).items()]


def _params(params: Mapping[str, Any] | None) -> list[tracking_pb2.Param]:
    return [tracking_pb2.Param(key=str(k), value=str(v)) for k, v in (params or {}).items()]


def _order_by(clause: Mapping[str, Any] | str) -> rpc.LoggedModelOrderBy:
    """MLflow's dict form ``{"field_name", "ascending", "dataset_name", "dataset_digest"}``, or
    the string form ``"metrics.accuracy DESC"``."""
    if isinstance(clause, str):
        field_name, _, direction = clause.strip().partition(" ")
        direction = direction.strip().upper()
        if direction not in ("", "ASC", "DESC"):
            raise InvalidParameterValue(
                f"Invalid order_by {clause!r}: expected '<field> [ASC|DESC]'"
            )
        return rpc.LoggedModelOrderBy(field_name=field_name, ascending=direction != "DESC")
    unknown = set(clause) - {"field_name", "ascending", "dataset_name", "dataset_digest"}
    if unknown or "field_name" not in clause:
        raise InvalidParameterValue(
            f"Invalid order_by {dict(clause)!r}: expected a dict with field_name and optionally "
            "ascending, dataset_name, dataset_digest"
        )
    order = rpc.LoggedModelOrderBy(
        field_name=str(clause["field_name"]),
        dataset_name=clause.get("dataset_name") or "",
        dataset_digest=clause.get("dataset_digest") or "",
    )
    if clause.get("ascending") is not None:
        order.ascending = bool(clause["ascending"])
    return order


class LoggedModelsClient:
    """Create, finalize, read, search, tag and delete logged models; link runs to them.

    Built from a transport alone; ``Client`` exposes each method under the same name.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _model_call(self, method_name: str, request: Any) -> Any:
        stub = self._transport.tracking
        return self._transport.call(getattr(stub, method_name), request)

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """Creates a logged model (status PENDING; finalize it once its files are uploaded).
        A name is generated when none is given."""
        request = rpc.CreateLoggedModelRequest(
            experiment_id=experiment_id,
            name=name or "",
            source_run_id=source_run_id or "",
            model_type=model_type or "",
            params=_params(params),
            tags=_tags(tags),
        )
        return LoggedModel.from_proto(self._model_call("CreateLoggedModel", request).model)

    def finalize_logged_model(
        self, model_id: str, status: LoggedModelStatus | str | int
    ) -> LoggedModel:
        """Sets the model's final status: ``LoggedModelStatus.READY`` or ``FAILED``."""
        request = rpc.FinalizeLoggedModelRequest(
            model_id=model_id,
            status=LoggedModelStatus.coerce(status).to_proto(),  # type: ignore[arg-type]
        )
        return LoggedModel.from_proto(self._model_call("FinalizeLoggedModel", request).model)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        request = rpc.GetLoggedModelRequest(model_id=model_id, allow_deleted=allow_deleted)
        return LoggedModel.from_proto(self._model_call("GetLoggedModel", request).model)

    def delete_logged_model(self, model_id: str) -> None:
        self._model_call("DeleteLoggedModel", rpc.DeleteLoggedModelRequest(model_id=model_id))

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Mapping[str, Any] | str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """One page of logged models (``.token`` names the next). ``datasets`` are dicts with
        ``dataset_name`` (and optionally ``dataset_digest``) scoping metric filters;
        ``order_by`` items are MLflow's dicts (``field_name``, ``ascending``,
        ``dataset_name``, ``dataset_digest``) or strings like ``"metrics.acc DESC"``."""
        if isinstance(experiment_ids, str) or not all(isinstance(e, str) for e in experiment_ids):
            raise InvalidParameterValue(
                f"experiment_ids must be a list of strings, got {experiment_ids!r}"
            )
        request = rpc.SearchLoggedModelsRequest(
            experiment_ids=list(experiment_ids),
            filter=filter_string or "",
            datasets=[
                rpc.LoggedModelDatasetFilter(
                    dataset_name=d.get("dataset_name") or "",
                    dataset_digest=d.get("dataset_digest") or "",
                )
                for d in datasets or []
            ],
            max_results=max_results or 0,
            order_by=[_order_by(clause) for clause in order_by or []],
            page_token=page_token or "",
        )
        response = self._model_call("SearchLoggedModels", request)
        return PagedList(
            [LoggedModel.from_proto(m) for m in response.models], response.next_page_token
        )

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, Any]) -> None:
        request = rpc.SetLoggedModelTagsRequest(model_id=model_id, tags=_tags(tags))
        self._model_call("SetLoggedModelTags", request)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        request = rpc.DeleteLoggedModelTagRequest(model_id=model_id, tag_key=key)
        self._model_call("DeleteLoggedModelTag", request)

    def log_model_params(self, model_id: str, params: Mapping[str, Any]) -> None:
        """Logs params of a logged model (write-once per key)."""
        request = rpc.LogLoggedModelParamsRequest(model_id=model_id, params=_params(params))
        self._model_call("LogLoggedModelParams", request)

    def log_outputs(self, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
        """Records logged models as outputs of a run."""
        request = rpc.LogOutputsRequest(run_id=run_id, models=[m.to_proto() for m in models])
        self._model_call("LogOutputs", request)
