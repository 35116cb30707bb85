"""MLflow's size limits, defined once (REFERENCE.md, "Limits").

The services validate against these and the SDK uses the same numbers to split batches and
truncate values before it sends them, so the two can never disagree. Plain constants only: this
module imports nothing and is safe for any layer (SDK, services, CLI, plugins) to import.
"""

from __future__ import annotations

# ---------------------------------------------------------------- tracking: lengths (characters)

#: Keys of params, metrics and tags.
MAX_KEY_LENGTH = 250
#: A param's value. The SDK truncates longer values with a warning, as MLflow does.
MAX_PARAM_VALUE_LENGTH = 6000
#: A run tag's value. The SDK truncates longer values with a warning, as MLflow does.
MAX_RUN_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_ARTIFACT_LOCATION_LENGTH = 2048
#: A run's name (also the ``mlflow.runName`` tag's value).
MAX_RUN_NAME_LENGTH = 250
MAX_USER_ID_LENGTH = 256
#: Dataset inputs: a tag on an input, and the dataset's fields (MLflow's column sizes).
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500
MAX_DATASET_FIELD_LENGTHS: tuple[tuple[str, int], ...] = (
    ("name", 500),
    ("digest", 36),
    ("source_type", 36),
    ("source", 65535),
    ("schema", 1048575),
    ("profile", 16384),
)

# ---------------------------------------------------------------- tracking: counts per call

#: One log_batch call; the SDK splits bigger batches into several calls.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000

#: search_runs / search_experiments page sizes (0 asks for the default).
SEARCH_RUNS_DEFAULT = 1000
SEARCH_RUNS_MAX = 50000
#: ``mlgrid.search_runs`` (the fluent, DataFrame-returning search) gathers this many by default.
SEARCH_RUNS_PANDAS_DEFAULT = 100_000

#: get_metric_history_bulk_interval: runs per call, and points per run (also its default).
MAX_BULK_INTERVAL_RUNS = 100
MAX_BULK_INTERVAL_POINTS = 2500

# ---------------------------------------------------------------- tracking: logged models (MLflow 3)

#: A logged model's name and model_type (MLflow's column sizes).
MAX_LOGGED_MODEL_NAME_LENGTH = 500
MAX_LOGGED_MODEL_TYPE_LENGTH = 500
#: A logged model's param and tag values. MLflow stores unbounded text; mlgrid bounds them like
#: registry tags (model_config params and the mlflow.modelVersions tag can be long).
MAX_LOGGED_MODEL_VALUE_LENGTH = 100000
#: The dataset a metric point names (MLflow's column sizes).
MAX_METRIC_DATASET_NAME_LENGTH = 500
MAX_METRIC_DATASET_DIGEST_LENGTH = 36
#: search_logged_models page sizes (0 asks for the default).
SEARCH_LOGGED_MODELS_DEFAULT = 100
SEARCH_LOGGED_MODELS_MAX = 50000

# ---------------------------------------------------------------- registry

MAX_MODEL_NAME_LENGTH = 256
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000
MAX_REGISTRY_TAG_VALUE_LENGTH = 100000
#: A model version's source URI.
MAX_SOURCE_LENGTH = 4096

SEARCH_MODELS_DEFAULT = 100
SEARCH_MODELS_MAX = 1000
SEARCH_VERSIONS_DEFAULT = 10_000
SEARCH_VERSIONS_MAX = 200_000

# ---------------------------------------------------------------- artifacts

#: Files named in one batch call (BatchGetUrls and the like).
MAX_BATCH_FILES = 10_000
