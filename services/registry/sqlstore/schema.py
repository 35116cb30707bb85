"""Tables of the SQL registry store (SQLAlchemy Core), mirrored by the Alembic migrations.

A registered model has a surrogate integer id so that renaming touches one row: versions, tags
and aliases refer to the id, not the name. ``last_version`` is the per-model counter that makes
version numbers gap-free under concurrent creates (see ``SqlRegistryStore.create_model_version``).
Table names are MLflow's, so the store can share a database with the tracking tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("last_version", Integer, nullable=False, default=0),
    UniqueConstraint("name", name="uq_registered_models_name"),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("model_id", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(
        ["model_id"], ["registered_models.id"], ondelete="CASCADE", name="fk_rm_tags_model"
    ),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("model_id", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("user_id", String(256), nullable=False, default=""),
    Column("current_stage", String(20), nullable=False, default="None"),
    Column("source", Text, nullable=False),
    Column("storage_location", Text, nullable=False, default=""),
    Column("run_id", String(256), nullable=False, default=""),
    Column("run_link", Text, nullable=False, default=""),
    Column("status", Integer, nullable=False),
    Column("status_message", Text, nullable=False, default=""),
    # MLflow 3's logged model the version was made from ("" when none); ``model_id`` above is
    # the registered model's key, so the column carries the longer name.
    Column("logged_model_id", String(36), nullable=False, default=""),
    ForeignKeyConstraint(
        ["model_id"], ["registered_models.id"], ondelete="CASCADE", name="fk_mv_model"
    ),
    Index("ix_model_versions_run_id", "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("model_id", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(
        ["model_id", "version"],
        ["model_versions.model_id", "model_versions.version"],
        ondelete="CASCADE",
        name="fk_mv_tags_version",
    ),
)

registered_model_aliases = Table(
    "registered_model_aliases",
    metadata,
    Column("model_id", Integer, primary_key=True),
    Column("alias", String(256), primary_key=True),
    Column("version", Integer, nullable=False),
    ForeignKeyConstraint(
        ["model_id", "version"],
        ["model_versions.model_id", "model_versions.version"],
        ondelete="CASCADE",
        name="fk_rm_aliases_version",
    ),
)
