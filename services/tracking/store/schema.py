"""The tracking schema (SQLAlchemy Core tables). Alembic revisions create it; keep them in step.

Design notes:
- ``metrics`` is append-only, indexed for history reads by (series, step, timestamp), where
  ``series`` is a 64-bit hash of (run_uuid, key) (series.py). That index is unique over the whole
  point, and points are inserted with insert-ignore semantics: a point (key, value, timestamp,
  step) is stored once per run however often it is logged, as MLflow does, so client retries are
  safe. NaN is stored as value 0 with ``is_nan`` true (SQLite cannot store NaN).
- ``latest_metrics`` holds each key's greatest (step, timestamp, value) point, maintained by the
  same transaction as the insert, so search and get_run read one row per key; its (key, is_nan,
  value) index serves searches ordered by a metric.
- Runs carry ``deleted_with_experiment`` so restoring an experiment restores exactly the runs
  its deletion took along.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ACTIVE = "active"
DELETED = "deleted"

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(500), nullable=False, unique=True),
    sa.Column("artifact_location", sa.String(2048), nullable=False),
    sa.Column("lifecycle_stage", sa.String(32), nullable=False),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("last_update_time", sa.BigInteger, nullable=False),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_uuid", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(250), nullable=False),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.String(256), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("artifact_uri", sa.String(2200), nullable=False),
    sa.Column("lifecycle_stage", sa.String(20), nullable=False),
    sa.Column("deleted_with_experiment", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time", "run_uuid"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.String(6000), nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.String(8000), nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    # No foreign key: an append-only log written in bulk, and an FK would cost a lookup per row;
    # the write path checks the run once per call instead.
    sa.Column("run_uuid", sa.String(32), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float(53), nullable=False),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    # metric_series(run_uuid, key) (series.py): a bigint index key is much cheaper to insert.
    sa.Column("series", sa.BigInteger, nullable=False),
    # One row per point (insert-ignore); history reads use its prefix: one series ordered by
    # (step, timestamp), filtered on run_uuid and key too.
    sa.Index(
        "uq_metrics_point",
        "series",
        "step",
        "timestamp",
        "value",
        "is_nan",
        "run_uuid",
        "key",
        unique=True,
    ),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float(53), nullable=False),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    # Search ordered by a metric walks one key's numbers in value order and stops after a page
    # (sql_runs.search_runs), whatever the number of runs.
    sa.Index("ix_latest_metrics_key_value", "key", "is_nan", "value"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("dataset_uuid", sa.String(32), primary_key=True),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("digest", sa.String(36), nullable=False),
    sa.Column("source_type", sa.String(36), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),
    sa.UniqueConstraint(
        "experiment_id", "name", "digest", name="uq_datasets_experiment_name_digest"
    ),
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "dataset_uuid",
        sa.String(32),
        sa.ForeignKey("datasets.dataset_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Index("ix_run_inputs_dataset", "dataset_uuid"),
)

run_input_tags = sa.Table(
    "run_input_tags",
    metadata,
    sa.Column("run_uuid", sa.String(32), primary_key=True),
    sa.Column("dataset_uuid", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.String(500), nullable=False),
    sa.ForeignKeyConstraint(
        ["run_uuid", "dataset_uuid"],
        ["run_inputs.run_uuid", "run_inputs.dataset_uuid"],
        ondelete="CASCADE",
    ),
)
