"""MLflow 3's logged models: models, their params, tags and linked metrics; run model outputs
and inputs. See mlgrid_services.tracking.store.logged_model_schema.

Revision ID: 0004_logged_models
Revises: 0003_metric_points_once
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from mlgrid_services.common.sql_dialect import ascii_key, table_options

revision = "0004_logged_models"
down_revision = "0003_metric_points_once"
branch_labels = None
depends_on = None


def _model_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["model_id"], ["logged_models.model_id"], ondelete="CASCADE")


def _run_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_uuid"], ["runs.run_uuid"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("artifact_location", sa.String(length=2200), nullable=False),
        sa.Column("creation_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=32), nullable=False),
        sa.Column("model_type", sa.String(length=500), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=False),
        sa.Column("status_message", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.experiment_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id"),
        **table_options(op.get_bind()),
    )
    op.create_index(
        "ix_logged_models_experiment_created",
        "logged_models",
        ["experiment_id", "creation_timestamp_ms"],
    )
    for table in ("logged_model_params", "logged_model_tags"):
        op.create_table(
            table,
            sa.Column("model_id", sa.String(length=36), nullable=False),
            sa.Column("key", sa.String(length=250), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            _model_fk(),
            sa.PrimaryKeyConstraint("model_id", "key"),
            **table_options(op.get_bind()),
        )
    op.create_table(
        "logged_model_metrics",
        sa.Column("model_id", sa.String(length=36), nullable=False),
        # ASCII on MySQL: this primary key is too long for InnoDB in utf8mb4.
        sa.Column("key", ascii_key(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("run_uuid", sa.String(length=32), nullable=False),
        sa.Column("dataset_name", sa.String(length=500), nullable=False),
        sa.Column("dataset_digest", sa.String(length=36), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        _model_fk(),
        _run_fk(),
        sa.PrimaryKeyConstraint(
            "model_id", "key", "step", "timestamp", "run_uuid", "dataset_name", "dataset_digest"
        ),
        **table_options(op.get_bind()),
    )
    op.create_table(
        "run_model_outputs",
        sa.Column("run_uuid", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        _run_fk(),
        _model_fk(),
        sa.PrimaryKeyConstraint("run_uuid", "model_id"),
        **table_options(op.get_bind()),
    )
    op.create_table(
        "run_model_inputs",
        sa.Column("run_uuid", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=36), nullable=False),
        _run_fk(),
        sa.PrimaryKeyConstraint("run_uuid", "model_id"),
        **table_options(op.get_bind()),
    )


def downgrade() -> None:
    for table in (
        "run_model_inputs",
        "run_model_outputs",
        "logged_model_metrics",
        "logged_model_tags",
        "logged_model_params",
    ):
        op.drop_table(table)
    op.drop_index("ix_logged_models_experiment_created", table_name="logged_models")
    op.drop_table("logged_models")
