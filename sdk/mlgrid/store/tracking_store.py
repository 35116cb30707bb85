"""The tracking store interface that the built-in SQL store and plugin stores implement.

A store persists experiments, runs and their data. Entities in and out are the generated proto
messages of :mod:`mlgrid.api.tracking.v1.tracking_pb2` (``Experiment``, ``Run``, ``RunInfo``,
``Metric``, ``Param``, ``DatasetInput``, ``MetricWithRunId``) and
:mod:`mlgrid.api.common.v1.common_pb2` (``Tag``), so the service hands them to gRPC unchanged.

Division of labour (DESIGN.md: servicer → domain → store):

- The service's domain layer has already validated every input that can be checked without the
  database: key formats and value lengths, batch limits, ids' formats, max_results ranges,
  infinities clamped, defaults filled in (timestamps, run names, artifact locations). A store
  may trust them.
- The store enforces the invariants that depend on stored state, atomically, and raises the
  typed exceptions of :mod:`mlgrid.exceptions`:

  * ``ResourceDoesNotExist`` for an unknown experiment / run / tag;
  * ``ResourceAlreadyExists`` for a taken experiment name (also when a concurrent creator won);
  * ``InvalidParameterValue`` for writes to a deleted run (or a run of a deleted experiment),
    for a param re-logged with another value, and for malformed filters or page tokens.

- Filters are parsed with :mod:`mlgrid.store.search_filter` and page tokens made with
  :mod:`mlgrid.store.paging`, so every store accepts and rejects the same inputs.

Times are milliseconds since the epoch. Ids are strings made by the store.
"""

from __future__ import annotations

import abc
from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.store.logged_model_filter import LoggedModelOrder

__all__ = ["AbstractTrackingStore", "HistoryColumns", "HistoryPoint", "MetricBatch"]

#: A raw metric point of one key, as streamed by :meth:`AbstractTrackingStore.iter_metric_history`:
#: ``(step, timestamp, value)``.
HistoryPoint = tuple[int, int, float]


class HistoryColumns(NamedTuple):
    """A chunk of one key's history as columns, as streamed by
    :meth:`AbstractTrackingStore.iter_metric_history_columns`: point i is
    ``(steps[i], timestamps[i], values[i])``. Native-order machine arrays (typecodes ``q``,
    ``q``, ``d``), so a chunk is three buffers rather than an object per point."""

    steps: array[int]
    timestamps: array[int]
    values: array[float]

    @classmethod
    def of_points(cls, points: Sequence[HistoryPoint]) -> HistoryColumns:
        if not points:
            return cls(array("q"), array("q"), array("d"))
        steps, timestamps, values = zip(*points, strict=True)
        return cls(array("q", steps), array("q", timestamps), array("d", values))


class MetricBatch(Sequence[tracking_pb2.Metric]):
    """Validated metric points, with their fields already read out as columns.

    The domain layer reads every point's fields once to validate them; reading a field of a
    message costs as much as the rest of the per-point work, so it hands the columns on. A store
    may use ``keys``, ``steps``, ``timestamps`` and ``values`` (index i describes point i, with
    infinities already clamped) or ignore them: as a sequence this is the points as messages.
    Points that arrived as columns (``LogBatchRequest.metric_columns``) only become messages if
    a store asks for them that way.
    """

    __slots__ = ("_messages", "keys", "steps", "timestamps", "values")

    def __init__(
        self,
        messages: Sequence[tracking_pb2.Metric] | None,
        keys: Sequence[str],
        steps: Sequence[int],
        timestamps: Sequence[int],
        values: Sequence[float],
    ) -> None:
        """``messages`` None: built from the columns on first use."""
        self._messages = messages
        self.keys = keys
        self.steps = steps
        self.timestamps = timestamps
        self.values = values

    def _points(self) -> Sequence[tracking_pb2.Metric]:
        if self._messages is None:
            self._messages = [
                tracking_pb2.Metric(key=k, value=v, timestamp=t, step=s)
                for k, s, t, v in zip(
                    self.keys, self.steps, self.timestamps, self.values, strict=True
                )
            ]
        return self._messages

    def __len__(self) -> int:
        return len(self.values) if self._messages is None else len(self._messages)

    @overload
    def __getitem__(self, index: int) -> tracking_pb2.Metric: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tracking_pb2.Metric]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tracking_pb2.Metric | Sequence[tracking_pb2.Metric]:
        return self._points()[index]

    def __iter__(self) -> Iterator[tracking_pb2.Metric]:
        return iter(self._points())


class AbstractTrackingStore(abc.ABC):
    """Persistence of experiments, runs, params, metrics, tags and dataset inputs."""

    # ----------------------------------------------------------------- experiments

    @abc.abstractmethod
    def create_experiment(
        self, name: str, artifact_location: str | None, tags: Sequence[common_pb2.Tag]
    ) -> str:
        """Creates an active experiment and returns its new id.

        ``artifact_location`` None means "the store's default": ``<default root>/<id>``, which
        the caller cannot know before the id exists. Raises ResourceAlreadyExists when an
        experiment (active or deleted) already has ``name``, including when a concurrent call
        created it first.
        """

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> tracking_pb2.Experiment:
        """The experiment with its tags, in any lifecycle stage. ResourceDoesNotExist if none."""

    @abc.abstractmethod
    def get_experiment_by_name(self, name: str) -> tracking_pb2.Experiment | None:
        """The experiment called ``name`` (names are unique), or None."""

    @abc.abstractmethod
    def search_experiments(
        self,
        view_type: int,
        max_results: int,
        filter_string: str,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Experiment], str]:
        """One page of experiments and the next page token ("" on the last page).

        ``view_type`` is a ``common_pb2.ViewType`` (ACTIVE_ONLY, DELETED_ONLY, ALL).
        ``filter_string`` follows :func:`mlgrid.store.search_filter.check_experiment_filter`;
        ``order_by`` :func:`~mlgrid.store.search_filter.parse_experiment_order_by`, with default
        and tie-break ``creation_time DESC, experiment_id ASC``.
        """

    @abc.abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Renames an experiment. ResourceDoesNotExist / ResourceAlreadyExists (name taken);
        InvalidParameterValue when the experiment is deleted."""

    @abc.abstractmethod
    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-deletes an experiment and soft-deletes its active runs with it (both become
        ``deleted``). ResourceDoesNotExist if unknown; InvalidParameterValue for the default
        experiment "0" or when it is already deleted."""

    @abc.abstractmethod
    def restore_experiment(self, experiment_id: str) -> None:
        """Restores a deleted experiment and the runs that were deleted together with it (runs
        deleted one by one before stay deleted). InvalidParameterValue when it is active."""

    @abc.abstractmethod
    def set_experiment_tag(self, experiment_id: str, tag: common_pb2.Tag) -> None:
        """Sets (overwrites) an experiment tag. InvalidParameterValue if the experiment is
        deleted."""

    @abc.abstractmethod
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Deletes an experiment tag. ResourceDoesNotExist if the tag is not set."""

    # ----------------------------------------------------------------------- runs

    @abc.abstractmethod
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        run_name: str,
        tags: Sequence[common_pb2.Tag],
    ) -> tracking_pb2.Run:
        """Creates a RUNNING run with a new 32-hex id and returns it.

        The caller passes the final ``run_name`` and ``tags`` (already including
        ``mlflow.runName`` = ``run_name``). ``artifact_uri`` = the experiment's artifact_location
        + ``/<run_id>/artifacts``. ResourceDoesNotExist for an unknown experiment;
        InvalidParameterValue for a deleted one.
        """

    @abc.abstractmethod
    def get_run(self, run_id: str) -> tracking_pb2.Run:
        """The run with its params, tags, latest metrics and dataset inputs (any lifecycle
        stage). ResourceDoesNotExist if none."""

    @abc.abstractmethod
    def update_run(
        self, run_id: str, status: int | None, end_time: int | None, run_name: str | None
    ) -> tracking_pb2.RunInfo:
        """Changes the fields that are not None (``status`` is a RunStatus number); a new
        ``run_name`` also rewrites tag ``mlflow.runName``. Refuses deleted runs."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Soft-deletes a run (idempotent for a deleted run). ResourceDoesNotExist if none."""

    @abc.abstractmethod
    def restore_run(self, run_id: str) -> None:
        """Restores a deleted run. InvalidParameterValue when its experiment is deleted."""

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        view_type: int,
        max_results: int,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Run], str]:
        """One page of runs of ``experiment_ids`` and the next page token ("" when last).

        Each run carries its info, params, tags and latest metrics (dataset inputs come with
        :meth:`get_run`, keeping large pages to one query).

        ``filter_string`` follows :func:`mlgrid.store.search_filter.check_run_filter` (MLflow's
        grammar plus OR and parentheses; metric comparisons use each run's latest value);
        ``order_by`` :func:`~mlgrid.store.search_filter.parse_run_order_by`; missing values sort
        last; ties break on ``start_time DESC, run_id ASC``.
        """

    # ------------------------------------------------------------------ run data

    @abc.abstractmethod
    def log_param(self, run_id: str, param: tracking_pb2.Param) -> None:
        """Write-once: the same value again is a no-op; another value raises
        InvalidParameterValue (also when two writers race: one wins, the other gets the error)."""

    @abc.abstractmethod
    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> None:
        """Appends one point and, in the same transaction, updates the key's latest point (the
        greatest ``(step, timestamp, value)``). NaN values are kept."""

    @abc.abstractmethod
    def set_tag(self, run_id: str, tag: common_pb2.Tag) -> None:
        """Sets (overwrites) a run tag; ``mlflow.runName`` also renames the run."""

    @abc.abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None:
        """Deletes a run tag. ResourceDoesNotExist if the tag is not set."""

    @abc.abstractmethod
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tracking_pb2.Metric],
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
    ) -> None:
        """Writes everything in ONE transaction, all or nothing: a param conflicting with a
        stored value (or a deleted run) raises and leaves nothing written. No size ceiling here;
        the domain layer applies log_batch's limits (streaming ingest has none)."""

    @abc.abstractmethod
    def log_inputs(self, run_id: str, inputs: Sequence[tracking_pb2.DatasetInput]) -> None:
        """Links datasets to a run. A dataset is identified by (experiment, name, digest) and
        stored once; linking the same dataset again replaces the input's tags."""

    def search_datasets(
        self, experiment_ids: Sequence[str], limit: int
    ) -> list[tracking_pb2.DatasetSummary]:
        """The distinct (experiment, name, digest, context) of the dataset inputs of the runs of
        ``experiment_ids`` (deleted runs included, as in MLflow), at most ``limit``, ordered by
        experiment id, name, digest, context. ``context`` is the input's
        ``mlflow.data.context`` tag, "" without one. Unknown experiments contribute nothing.
        Not abstract: a store written before it answers NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} does not list datasets")

    # ------------------------------------------------------------------- history

    @abc.abstractmethod
    def get_metric_history(
        self, run_id: str, key: str, max_results: int, page_token: str
    ) -> tuple[list[tracking_pb2.Metric], str]:
        """Points of one key ordered by (step, timestamp); ``max_results`` 0 = all.
        ResourceDoesNotExist for an unknown run; an unknown key gives an empty list."""

    @abc.abstractmethod
    def iter_metric_history(
        self, run_id: str, key: str, chunk_size: int
    ) -> Iterator[Sequence[HistoryPoint]]:
        """The whole history of one key in chunks of at most ``chunk_size`` raw points
        ``(step, timestamp, value)``, ordered by (step, timestamp). Raw tuples rather than
        protos so the service can build its stream without copying each point twice; fetch
        with a server-side cursor so memory stays bounded."""

    def iter_metric_history_columns(
        self, run_id: str, key: str, chunk_size: int
    ) -> Iterator[HistoryColumns]:
        """The same points as :meth:`iter_metric_history`, in the same order and chunking, as
        columns. Not abstract: the default packs the raw tuples; a store that can read columns
        without a Python object per point (the SQL store on PostgreSQL) overrides it."""
        for chunk in self.iter_metric_history(run_id, key, chunk_size):
            yield HistoryColumns.of_points(chunk)

    @abc.abstractmethod
    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        key: str,
        start_step: int | None,
        end_step: int | None,
        max_results: int,
    ) -> list[tracking_pb2.MetricWithRunId]:
        """Sampled history of one key for each run, steps within [start_step, end_step]: at most
        ``max_results`` steps per run, evenly spread, always keeping the first and last step;
        one point per step (the latest by timestamp). Ordered by run (as given) then step."""

    # --------------------------------------------------------------- logged models
    #
    # MLflow 3's LoggedModel. Not abstract, so stores written before it keep loading: a store
    # without logged models answers these with NotImplementedError (as MLflow's base store does).

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        source_run_id: str,
        model_type: str,
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
    ) -> tracking_pb2.LoggedModel:
        """Creates a PENDING model with a new id ``m-<32 hex>`` in an active experiment and
        returns it. ``name`` is final (the domain generated one if needed); ``source_run_id`` and
        ``model_type`` are "" when not given. ``artifact_uri`` = the experiment's
        artifact_location + ``/models/<model_id>/artifacts``. ResourceDoesNotExist for an unknown
        experiment; InvalidParameterValue for a deleted one."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def get_logged_model(self, model_id: str, allow_deleted: bool) -> tracking_pb2.LoggedModel:
        """The model with its tags, params and linked metrics. ResourceDoesNotExist if none, or
        if it is deleted and not ``allow_deleted``."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def finalize_logged_model(self, model_id: str, status: int) -> tracking_pb2.LoggedModel:
        """Sets ``status`` (a LoggedModelStatus number) and last_updated_timestamp_ms; returns
        the model. ResourceDoesNotExist if none."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def delete_logged_model(self, model_id: str) -> None:
        """Soft-deletes the model (idempotent). ResourceDoesNotExist if none."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        datasets: Sequence[tuple[str, str]],
        max_results: int,
        order_by: Sequence[LoggedModelOrder],
        page_token: str,
    ) -> tuple[list[tracking_pb2.LoggedModel], str]:
        """One page of the active models of ``experiment_ids`` and the next page token.

        ``filter_string`` follows :func:`mlgrid.store.logged_model_filter.check_logged_model_filter`;
        ``datasets`` are ``(name, digest)`` pairs ("" digest: any) that scope metric comparisons
        and metric ordering (a value on any of them counts); with no metric comparison they keep
        only models with a metric on one of them. ``order_by`` comes from
        :func:`~mlgrid.store.logged_model_filter.parse_logged_model_order_by`; missing values
        sort last; ties break on ``creation_timestamp DESC, model_id ASC``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def set_logged_model_tags(
        self, model_id: str, tags: Sequence[common_pb2.Tag]
    ) -> tracking_pb2.LoggedModel:
        """Sets (overwrites) tags, a key repeated in ``tags`` keeping its last value; returns
        the model. ResourceDoesNotExist if none."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """ResourceDoesNotExist if the model or the tag does not exist."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def log_logged_model_params(self, model_id: str, params: Sequence[tracking_pb2.Param]) -> None:
        """Write-once per key, like run params: the same value again is a no-op, another value
        InvalidParameterValue (nothing written). ResourceDoesNotExist if the model is unknown."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def log_logged_model_metrics(self, run_id: str, metrics: Sequence[tracking_pb2.Metric]) -> None:
        """Links points (each with ``model_id`` set, ``dataset_name``/``dataset_digest``
        optional) to their models, recording ``run_id`` as the run that logged them. The same
        point again is stored once. The run must be active; ResourceDoesNotExist for an unknown
        model. The points are logged to the run itself by log_metric / log_batch."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def log_outputs(self, run_id: str, models: Sequence[tracking_pb2.ModelOutput]) -> None:
        """Records models as outputs of an active run (again: the step is updated).
        ResourceDoesNotExist for an unknown run or model."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    def log_model_inputs(self, run_id: str, models: Sequence[tracking_pb2.ModelInput]) -> None:
        """Records models (logged model or model version ids) as inputs of an active run."""
        raise NotImplementedError(f"{type(self).__name__} does not store logged models")

    # -------------------------------------------------------------------- lifecycle

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections and other resources. The default does nothing."""
