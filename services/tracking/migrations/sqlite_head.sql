-- What this service's migrations leave in an empty SQLite database, at this revision.
-- Written by python -m mlgrid_services.common.schema_snapshot; do not edit by hand.
-- revision: 0006_metrics_insert_vacuum
-- migrations: 0001_initial.py 0002_metric_series.py 0003_metric_points_once.py 0004_logged_models.py 0005_latest_metrics_value_index.py 0006_metrics_insert_vacuum.py
-- table: alembic_version_tracking
-- table: experiments
-- table: datasets
-- table: experiment_tags
-- table: runs
-- table: latest_metrics
-- table: params
-- table: run_inputs
-- table: tags
-- table: run_input_tags
-- table: metrics
-- table: logged_models
-- table: logged_model_params
-- table: logged_model_tags
-- table: logged_model_metrics
-- table: run_model_outputs
-- table: run_model_inputs
-- ;
CREATE TABLE alembic_version_tracking (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_tracking_pkc PRIMARY KEY (version_num)
)
-- ;
CREATE TABLE experiments (
	experiment_id INTEGER NOT NULL, 
	name VARCHAR(500) NOT NULL, 
	artifact_location VARCHAR(2048) NOT NULL, 
	lifecycle_stage VARCHAR(32) NOT NULL, 
	creation_time BIGINT NOT NULL, 
	last_update_time BIGINT NOT NULL, 
	PRIMARY KEY (experiment_id), 
	UNIQUE (name)
)
-- ;
CREATE TABLE datasets (
	dataset_uuid VARCHAR(32) NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	name VARCHAR(500) NOT NULL, 
	digest VARCHAR(36) NOT NULL, 
	source_type VARCHAR(36) NOT NULL, 
	source TEXT NOT NULL, 
	schema TEXT NOT NULL, 
	profile TEXT NOT NULL, 
	PRIMARY KEY (dataset_uuid), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id) ON DELETE CASCADE, 
	CONSTRAINT uq_datasets_experiment_name_digest UNIQUE (experiment_id, name, digest)
)
-- ;
CREATE TABLE experiment_tags (
	experiment_id INTEGER NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (experiment_id, "key"), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id) ON DELETE CASCADE
)
-- ;
CREATE TABLE runs (
	run_uuid VARCHAR(32) NOT NULL, 
	name VARCHAR(250) NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	user_id VARCHAR(256) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	start_time BIGINT NOT NULL, 
	end_time BIGINT, 
	artifact_uri VARCHAR(2200) NOT NULL, 
	lifecycle_stage VARCHAR(20) NOT NULL, 
	deleted_with_experiment BOOLEAN NOT NULL, 
	PRIMARY KEY (run_uuid), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id) ON DELETE CASCADE
)
-- ;
CREATE INDEX ix_runs_experiment_start ON runs (experiment_id, start_time, run_uuid)
-- ;
CREATE TABLE latest_metrics (
	run_uuid VARCHAR(32) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	step BIGINT NOT NULL, 
	timestamp BIGINT NOT NULL, 
	value FLOAT NOT NULL, 
	is_nan BOOLEAN NOT NULL, 
	PRIMARY KEY (run_uuid, "key"), 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE
)
-- ;
CREATE TABLE params (
	run_uuid VARCHAR(32) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value VARCHAR(6000) NOT NULL, 
	PRIMARY KEY (run_uuid, "key"), 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE
)
-- ;
CREATE TABLE run_inputs (
	run_uuid VARCHAR(32) NOT NULL, 
	dataset_uuid VARCHAR(32) NOT NULL, 
	PRIMARY KEY (run_uuid, dataset_uuid), 
	FOREIGN KEY(dataset_uuid) REFERENCES datasets (dataset_uuid) ON DELETE CASCADE, 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE
)
-- ;
CREATE INDEX ix_run_inputs_dataset ON run_inputs (dataset_uuid)
-- ;
CREATE TABLE tags (
	run_uuid VARCHAR(32) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value VARCHAR(8000) NOT NULL, 
	PRIMARY KEY (run_uuid, "key"), 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE
)
-- ;
CREATE TABLE run_input_tags (
	run_uuid VARCHAR(32) NOT NULL, 
	dataset_uuid VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value VARCHAR(500) NOT NULL, 
	PRIMARY KEY (run_uuid, dataset_uuid, "key"), 
	FOREIGN KEY(run_uuid, dataset_uuid) REFERENCES run_inputs (run_uuid, dataset_uuid) ON DELETE CASCADE
)
-- ;
CREATE TABLE "metrics" (
	run_uuid VARCHAR(32) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	step BIGINT NOT NULL, 
	timestamp BIGINT NOT NULL, 
	value FLOAT NOT NULL, 
	is_nan BOOLEAN NOT NULL, 
	series BIGINT NOT NULL
)
-- ;
CREATE UNIQUE INDEX uq_metrics_point ON metrics (series, step, timestamp, value, is_nan, run_uuid, "key")
-- ;
CREATE TABLE logged_models (
	model_id VARCHAR(36) NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	name VARCHAR(500) NOT NULL, 
	artifact_location VARCHAR(2200) NOT NULL, 
	creation_timestamp_ms BIGINT NOT NULL, 
	last_updated_timestamp_ms BIGINT NOT NULL, 
	status INTEGER NOT NULL, 
	lifecycle_stage VARCHAR(32) NOT NULL, 
	model_type VARCHAR(500) NOT NULL, 
	source_run_id VARCHAR(32) NOT NULL, 
	status_message VARCHAR(1000) NOT NULL, 
	PRIMARY KEY (model_id), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id) ON DELETE CASCADE
)
-- ;
CREATE INDEX ix_logged_models_experiment_created ON logged_models (experiment_id, creation_timestamp_ms)
-- ;
CREATE TABLE logged_model_params (
	model_id VARCHAR(36) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (model_id, "key"), 
	FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE
)
-- ;
CREATE TABLE logged_model_tags (
	model_id VARCHAR(36) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (model_id, "key"), 
	FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE
)
-- ;
CREATE TABLE logged_model_metrics (
	model_id VARCHAR(36) NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	step BIGINT NOT NULL, 
	timestamp BIGINT NOT NULL, 
	run_uuid VARCHAR(32) NOT NULL, 
	dataset_name VARCHAR(500) NOT NULL, 
	dataset_digest VARCHAR(36) NOT NULL, 
	value FLOAT NOT NULL, 
	is_nan BOOLEAN NOT NULL, 
	PRIMARY KEY (model_id, "key", step, timestamp, run_uuid, dataset_name, dataset_digest), 
	FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE, 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE
)
-- ;
CREATE TABLE run_model_outputs (
	run_uuid VARCHAR(32) NOT NULL, 
	model_id VARCHAR(36) NOT NULL, 
	step BIGINT NOT NULL, 
	PRIMARY KEY (run_uuid, model_id), 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE, 
	FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE
)
-- ;
CREATE TABLE run_model_inputs (
	run_uuid VARCHAR(32) NOT NULL, 
	model_id VARCHAR(36) NOT NULL, 
	PRIMARY KEY (run_uuid, model_id), 
	FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid) ON DELETE CASCADE
)
-- ;
CREATE INDEX ix_latest_metrics_key_value ON latest_metrics ("key", is_nan, value)
-- ;
INSERT INTO "alembic_version_tracking" ("version_num") VALUES ('0006_metrics_insert_vacuum')
-- ;
INSERT INTO "experiments" ("experiment_id", "name", "artifact_location", "lifecycle_stage", "creation_time", "last_update_time") VALUES (0, 'Default', '', 'active', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
