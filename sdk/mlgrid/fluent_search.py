"""The fluent API's searches: every page of experiments or runs, as MLflow's fluent functions
return them (runs as a pandas DataFrame by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlgrid import fluent
from mlgrid.entities import Experiment, Run, ViewType
from mlgrid.entities.frames import import_pandas, runs_to_pandas
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import SEARCH_RUNS_MAX, SEARCH_RUNS_PANDAS_DEFAULT

#: Page size asked of the server while collecting results: the most it allows.
PAGE_MAX = SEARCH_RUNS_MAX


def search_experiments(
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[Experiment]:
    """Every matching experiment (all pages), or at most ``max_results``."""
    client = fluent.state.client()
    found: list[Experiment] = []
    token: str | None = None
    while True:
        page_size = min(PAGE_MAX, max_results - len(found)) if max_results else PAGE_MAX
        page = client.search_experiments(view_type, page_size, filter_string, order_by, token)
        found.extend(page)
        token = page.token
        if not token or (max_results is not None and len(found) >= max_results):
            return found


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = SEARCH_RUNS_PANDAS_DEFAULT,
    order_by: list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
) -> Any:
    """Runs matching ``filter_string``, as a pandas DataFrame (MLflow's columns) or a list.

    Without experiment ids or names it searches the active experiment (or all experiments
    with ``search_all_experiments=True``).
    """
    if output_format not in ("pandas", "list"):
        raise InvalidParameterValue(
            f"output_format {output_format!r} is not supported; use 'pandas' or 'list'"
        )
    if output_format == "pandas":
        import_pandas()  # fail before searching when pandas is missing
    client = fluent.state.client()
    ids = [str(e) for e in experiment_ids] if experiment_ids else []
    for name in experiment_names or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            ids.append(experiment.experiment_id)
    if not ids and not experiment_names:
        if search_all_experiments:
            ids = [e.experiment_id for e in search_experiments(view_type=ViewType.ALL)]
        else:
            ids = [fluent.current_experiment_id()]
    runs: list[Run] = []
    token: str | None = None
    while ids and len(runs) < max_results:
        page_size = min(PAGE_MAX, max_results - len(runs))
        page = client.search_runs(ids, filter_string, run_view_type, page_size, order_by, token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs_to_pandas(runs) if output_format == "pandas" else runs
