"""Runs as a pandas DataFrame, with MLflow's ``search_runs`` columns.

pandas is optional for the SDK (``pip install 'mlgrid[pandas]'``), so it is imported only here,
when a frame is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlgrid.exceptions import InvalidParameterValue

from .run import Run

#: Leading columns, in MLflow's order.
INFO_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")


def import_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise InvalidParameterValue(
            "output_format='pandas' needs pandas, which is not installed: "
            "pip install 'mlgrid[pandas]' (or pass output_format='list')"
        ) from None
    return pandas


def runs_to_pandas(runs: Sequence[Run]) -> Any:
    """One row per run: info columns, then ``metrics.*``, ``params.*`` and ``tags.*`` (sorted).
    Times are UTC timestamps; a metric a run lacks is NaN, a param or tag None."""
    pd = import_pandas()
    metric_keys = sorted({k for run in runs for k in run.data.metrics})
    param_keys = sorted({k for run in runs for k in run.data.params})
    tag_keys = sorted({k for run in runs for k in run.data.tags})
    columns: dict[str, list[Any]] = {
        "run_id": [r.info.run_id for r in runs],
        "experiment_id": [r.info.experiment_id for r in runs],
        "status": [r.info.status for r in runs],
        "artifact_uri": [r.info.artifact_uri for r in runs],
        "start_time": pd.to_datetime([r.info.start_time for r in runs], unit="ms", utc=True),
        "end_time": pd.to_datetime([r.info.end_time for r in runs], unit="ms", utc=True),
    }
    for key in metric_keys:
        columns[f"metrics.{key}"] = [r.data.metrics.get(key, float("nan")) for r in runs]
    for key in param_keys:
        columns[f"params.{key}"] = [r.data.params.get(key) for r in runs]
    for key in tag_keys:
        columns[f"tags.{key}"] = [r.data.tags.get(key) for r in runs]
    return pd.DataFrame(columns)
