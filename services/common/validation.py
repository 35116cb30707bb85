"""MLflow's validation rules, in one place, over the limits of :mod:`mlgrid.limits`.

Every check raises :class:`mlgrid.exceptions.InvalidParameterValue` whose message names the field,
shows the offending value (shortened) and says what would be accepted. The tracking and registry
services both use these.
"""

from __future__ import annotations

import math
import posixpath
import re
from functools import lru_cache

from mlgrid import limits
from mlgrid.exceptions import InvalidParameterValue

#: +/-infinity are stored as the largest finite doubles (as MLflow does).
MAX_DOUBLE = 1.7976931348623157e308

_KEY_CHARS = re.compile(r"^[A-Za-z0-9_\-. /:]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")


def shorten(value: object, limit: int = 60) -> str:
    """``repr`` of ``value``, cut to about ``limit`` characters for error messages."""
    text = str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} characters)"
    return repr(text)


@lru_cache(maxsize=4096)
def _key_problem(key: str) -> str | None:
    # Cached: a batch of 1,000 points usually repeats a handful of keys.
    if not key:
        return "must not be empty"
    if len(key) > limits.MAX_KEY_LENGTH:
        return f"must be at most {limits.MAX_KEY_LENGTH} characters, got {len(key)}"
    if not _KEY_CHARS.match(key):
        return (
            "may only contain alphanumerics, underscores (_), dashes (-), periods (.), "
            "spaces ( ), colons (:) and slashes (/)"
        )
    normalized = posixpath.normpath(key)
    if normalized != key or normalized == "." or normalized.startswith(("..", "/")):
        return "must be a normalized relative path (no leading '/', no '..' or '.' segments)"
    return None


def validate_key(key: str, field: str = "key") -> None:
    """A param/metric/tag key: ≤ 250 chars of ``[A-Za-z0-9_ ./:-]``, a normalized relative path."""
    problem = _key_problem(key)
    if problem is not None:
        raise InvalidParameterValue(f"Invalid {field} {shorten(key)}: {field} {problem}")


def validate_length(value: str, limit: int, field: str) -> None:
    """``value`` is at most ``limit`` characters long."""
    if len(value) > limit:
        raise InvalidParameterValue(
            f"Invalid {field} {shorten(value)}: {field} must be at most {limit} characters, "
            f"got {len(value)}"
        )


def validate_param(key: str, value: str) -> None:
    validate_key(key, "param key")
    validate_length(value, limits.MAX_PARAM_VALUE_LENGTH, f"value of param {key!r}")


def validate_run_tag(key: str, value: str) -> None:
    validate_key(key, "tag key")
    validate_length(value, limits.MAX_RUN_TAG_VALUE_LENGTH, f"value of tag {key!r}")


def validate_experiment_tag(key: str, value: str) -> None:
    validate_key(key, "experiment tag key")
    validate_length(
        value, limits.MAX_EXPERIMENT_TAG_VALUE_LENGTH, f"value of experiment tag {key!r}"
    )


def validate_registry_tag(key: str, value: str) -> None:
    validate_key(key, "tag key")
    validate_length(value, limits.MAX_REGISTRY_TAG_VALUE_LENGTH, f"value of tag {key!r}")


def validate_metric(key: str, value: float, timestamp: int, step: int) -> float:
    """Checks a metric point and returns its stored value (+/-inf clamped, NaN kept)."""
    validate_key(key, "metric key")
    if timestamp < 0:
        raise InvalidParameterValue(
            f"Invalid timestamp {timestamp} of metric {key!r}: must be >= 0 (milliseconds)"
        )
    if math.isinf(value):
        return MAX_DOUBLE if value > 0 else -MAX_DOUBLE
    return value


def validate_experiment_name(name: str) -> None:
    if not name or not name.strip():
        raise InvalidParameterValue("Invalid experiment name '': name must be a non-empty string")
    validate_length(name, limits.MAX_EXPERIMENT_NAME_LENGTH, "experiment name")


def validate_artifact_location(location: str) -> None:
    validate_length(location, limits.MAX_ARTIFACT_LOCATION_LENGTH, "artifact_location")


def validate_run_id(run_id: str, field: str = "run_id") -> None:
    if not _RUN_ID.match(run_id or ""):
        raise InvalidParameterValue(
            f"Invalid {field} {shorten(run_id)}: must match {_RUN_ID.pattern} "
            "(a server-made id such as 32 hexadecimal characters)"
        )


def validate_experiment_id(experiment_id: str, field: str = "experiment_id") -> None:
    if not _EXPERIMENT_ID.match(experiment_id or ""):
        raise InvalidParameterValue(
            f"Invalid {field} {shorten(experiment_id)}: must match {_EXPERIMENT_ID.pattern}"
        )


def validate_max_results(max_results: int, field: str = "max_results") -> int:
    """The effective page size: default 1000 when 0, at most 50,000."""
    if max_results == 0:
        return limits.SEARCH_RUNS_DEFAULT
    if max_results < 0 or max_results > limits.SEARCH_RUNS_MAX:
        raise InvalidParameterValue(
            f"Invalid {field} {max_results}: must be between 1 and {limits.SEARCH_RUNS_MAX}"
        )
    return max_results


def validate_batch_sizes(metrics: int, params: int, tags: int) -> None:
    """log_batch limits: 1000 metrics, 100 params, 100 tags, 1000 entities in all."""
    for count, limit, field in (
        (metrics, limits.MAX_BATCH_METRICS, "metrics"),
        (params, limits.MAX_BATCH_PARAMS, "params"),
        (tags, limits.MAX_BATCH_TAGS, "tags"),
    ):
        if count > limit:
            raise InvalidParameterValue(
                f"Invalid batch: {field} has {count} entries, at most {limit} are allowed per "
                "log_batch call (split the batch)"
            )
    total = metrics + params + tags
    if total > limits.MAX_BATCH_ENTITIES:
        raise InvalidParameterValue(
            f"Invalid batch: {total} metrics, params and tags in all, at most "
            f"{limits.MAX_BATCH_ENTITIES} are allowed per log_batch call (split the batch)"
        )
