"""MLflow's size limits, and mlgrid's request limits, defined once (REFERENCE.md, "Limits";
docs/limits.md).

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

#: SearchDatasets: experiments per call, and dataset summaries in one answer (MLflow's numbers).
MAX_DATASET_SEARCH_EXPERIMENTS = 20
MAX_DATASET_SUMMARIES = 1000

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

# ================================================================ request limits (mlgrid's policy)
# What one request, and one service, may cost (docs/limits.md): exceeding one is refused with
# INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming it (the checks are in mlgrid.request_limits).

# ---------------------------------------------------------------- search filters

#: Characters in one search filter. 64 KiB holds an ``IN`` list of ~1,800 run ids; a 10 MB filter
#: took a tracking process to 4 GB of memory before this limit.
MAX_FILTER_CHARS = 65_536
#: Comparisons in one filter (each becomes SQL; 20,000 ``OR``ed ones ran for over a minute).
MAX_FILTER_COMPARISONS = 500
#: Parentheses nested in one filter (5,000 overflowed the parser's stack).
MAX_FILTER_DEPTH = 32
#: Values in one filter's ``IN (...)`` lists, all lists together.
MAX_FILTER_LIST_VALUES = 10_000
#: ``order_by`` clauses in one search.
MAX_ORDER_BY_CLAUSES = 20

# ---------------------------------------------------------------- id lists, paths, tokens

#: Ids one request may name in a list (SearchRuns' experiment_ids; 100k gave a database error).
MAX_IDS_PER_REQUEST = 10_000
#: Characters of a path a client names (artifact paths, model-version sources).
MAX_PATH_CHARS = 4_096
#: Bytes (UTF-8) of one segment of such a path: what file systems allow (NAME_MAX).
MAX_PATH_SEGMENT_BYTES = 255
#: Characters of a page token (tokens the services make are far shorter).
MAX_PAGE_TOKEN_CHARS = 4_096

# ---------------------------------------------------------------- errors

#: Characters of client input an error message quotes; the rest is cut with "...".
MAX_ECHOED_CHARS = 200
#: Characters of an error message sent to a client. gRPC carries the message in a header whose
#: size is capped (8 KiB by default): a longer one is dropped and the client sees "Stream
#: removed" instead of the error.
MAX_ERROR_MESSAGE_CHARS = 2_000

# ---------------------------------------------------------------- messages, calls, transfers

#: The largest single gRPC message is ``mlgrid.protocol.MAX_MESSAGE_BYTES`` (64 MiB).
#: Calls one service process holds at once (running or queued for a worker thread); beyond it
#: gRPC answers RESOURCE_EXHAUSTED at once instead of queueing without bound.
MAX_CONCURRENT_CALLS = 1_024
#: Call pipelines (``CallPipelineService.Run``) one service process carries at once. Each holds one of
#: the server's 32 worker threads while open, so at most half of them; clients beyond it make
#: their calls on their own (services/common/pipeline.py).
MAX_PIPELINES = 16
#: The longest deadline a call pipeline may be opened with: gRPC ends it then, so a client that
#: went idle holds a worker thread no longer than this. The SDK opens a new one as it nears it.
MAX_PIPELINE_SECONDS = 30.0
#: Artifact transfers one artifacts process runs at once, and how long one waits for a slot:
#: settings (``MLGRID_ARTIFACTS_MAX_TRANSFERS``, default 8, and ``MLGRID_ARTIFACTS_TRANSFER_WAIT``,
#: default 120 s) in :mod:`mlgrid.environment`, applied by the service's transfer gate.
