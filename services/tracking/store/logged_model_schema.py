"""Tables of MLflow 3's logged models (SQLAlchemy Core), on the tracking schema's metadata.

Alembic revision 0004_logged_models creates them; keep the two in step.

Design notes:
- ``logged_models.status`` holds the LoggedModelStatus number (PENDING 1, READY 2,
  UPLOAD_FAILED 3); deletion is soft (``lifecycle_stage``), as for runs.
- ``logged_model_metrics`` keeps every point linked to a model together with the run that logged
  it. Dataset name and digest are '' rather than NULL so they can be part of the primary key: the
  same point logged twice is stored once, while the same step evaluated on two datasets is two
  points.
- A run's model outputs reference the model (cascade on delete); model inputs do not, since
  MLflow lets a run name a registered model version's id there too.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import metadata

logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("model_id", sa.String(36), primary_key=True),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("artifact_location", sa.String(2200), nullable=False),
    sa.Column("creation_timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("last_updated_timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("lifecycle_stage", sa.String(32), nullable=False),
    sa.Column("model_type", sa.String(500), nullable=False),
    sa.Column("source_run_id", sa.String(32), nullable=False),
    sa.Column("status_message", sa.String(1000), nullable=False),
    # Search pages an experiment's models newest first (the default order).
    sa.Index("ix_logged_models_experiment_created", "experiment_id", "creation_timestamp_ms"),
)

logged_model_params = sa.Table(
    "logged_model_params",
    metadata,
    sa.Column(
        "model_id",
        sa.String(36),
        sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

logged_model_tags = sa.Table(
    "logged_model_tags",
    metadata,
    sa.Column(
        "model_id",
        sa.String(36),
        sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

logged_model_metrics = sa.Table(
    "logged_model_metrics",
    metadata,
    sa.Column(
        "model_id",
        sa.String(36),
        sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True),
    sa.Column("timestamp", sa.BigInteger, primary_key=True),
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("dataset_name", sa.String(500), primary_key=True),
    sa.Column("dataset_digest", sa.String(36), primary_key=True),
    sa.Column("value", sa.Float(53), nullable=False),
    sa.Column("is_nan", sa.Boolean, nullable=False),
)

run_model_outputs = sa.Table(
    "run_model_outputs",
    metadata,
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "model_id",
        sa.String(36),
        sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("step", sa.BigInteger, nullable=False),
)

run_model_inputs = sa.Table(
    "run_model_inputs",
    metadata,
    sa.Column(
        "run_uuid",
        sa.String(32),
        sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("model_id", sa.String(36), primary_key=True),
)
