"""MLflow 3's logged-model methods of the tracking store, each one call of mlgrid's SDK.

MLflow's ``log_model`` (every flavor) creates a logged model, uploads its files to the model's
artifact location (wrapped, like runs'), records it as an output of the run, finalizes it and
links metrics to it by ``model_id``; searches and ``models:/<model_id>`` URIs read them back.
"""

from __future__ import annotations

from typing import Any

from mlflow.entities import (
    LoggedModel,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
)
from mlflow.store.entities.paged_list import PagedList

from mlgrid import entities as mg
from mlgrid.client import Client

from . import entities as convert
from .errors import mlflow_errors
from .uris import Gateway


class LoggedModelMethods:
    """Mixed into the tracking store; uses its ``_gateway`` and ``_client``."""

    _gateway: Gateway
    _client: Client

    @mlflow_errors
    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: list[LoggedModelTag] | None = None,
        params: list[LoggedModelParameter] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        created = self._client.create_logged_model(
            experiment_id,
            name=name,
            source_run_id=source_run_id,
            tags={t.key: t.value for t in tags or []},
            params={p.key: p.value for p in params or []},
            model_type=model_type,
        )
        return convert.logged_model(self._gateway, created)

    @mlflow_errors
    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        found = self._client.get_logged_model(model_id, allow_deleted=allow_deleted)
        return convert.logged_model(self._gateway, found)

    @mlflow_errors
    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        final = self._client.finalize_logged_model(model_id, str(status))
        return convert.logged_model(self._gateway, final)

    @mlflow_errors
    def delete_logged_model(self, model_id: str) -> None:
        self._client.delete_logged_model(model_id)

    @mlflow_errors
    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        page = self._client.search_logged_models(
            [str(e) for e in experiment_ids],
            filter_string,
            datasets,
            max_results,
            order_by,
            page_token,
        )
        return PagedList([convert.logged_model(self._gateway, m) for m in page], page.token)

    @mlflow_errors
    def set_logged_model_tags(self, model_id: str, tags: list[LoggedModelTag]) -> None:
        self._client.set_logged_model_tags(model_id, {t.key: t.value for t in tags})

    @mlflow_errors
    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self._client.delete_logged_model_tag(model_id, key)

    @mlflow_errors
    def log_logged_model_params(self, model_id: str, params: list[LoggedModelParameter]) -> None:
        self._client.log_model_params(model_id, {p.key: p.value for p in params})

    @mlflow_errors
    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        self._client.log_outputs(
            run_id, [mg.LoggedModelOutput(m.model_id, m.step or 0) for m in models]
        )
