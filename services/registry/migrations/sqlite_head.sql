-- What this service's migrations leave in an empty SQLite database, at this revision.
-- Written by python -m mlgrid_services.common.schema_snapshot; do not edit by hand.
-- revision: r0003_logged_model_id
-- migrations: r0001_initial.py r0002_change_notify.py r0003_logged_model_id.py
-- table: alembic_version_registry
-- table: registered_models
-- table: registered_model_tags
-- table: model_versions
-- table: model_version_tags
-- table: registered_model_aliases
-- ;
CREATE TABLE alembic_version_registry (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_registry_pkc PRIMARY KEY (version_num)
)
-- ;
CREATE TABLE registered_models (
	id INTEGER NOT NULL, 
	name VARCHAR(256) NOT NULL, 
	description TEXT NOT NULL, 
	creation_time BIGINT NOT NULL, 
	last_updated_time BIGINT NOT NULL, 
	last_version INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_registered_models_name UNIQUE (name)
)
-- ;
CREATE TABLE registered_model_tags (
	model_id INTEGER NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (model_id, "key"), 
	CONSTRAINT fk_rm_tags_model FOREIGN KEY(model_id) REFERENCES registered_models (id) ON DELETE CASCADE
)
-- ;
CREATE TABLE model_versions (
	model_id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	creation_time BIGINT NOT NULL, 
	last_updated_time BIGINT NOT NULL, 
	description TEXT NOT NULL, 
	user_id VARCHAR(256) NOT NULL, 
	current_stage VARCHAR(20) NOT NULL, 
	source TEXT NOT NULL, 
	storage_location TEXT NOT NULL, 
	run_id VARCHAR(256) NOT NULL, 
	run_link TEXT NOT NULL, 
	status INTEGER NOT NULL, 
	status_message TEXT NOT NULL, logged_model_id VARCHAR(36) DEFAULT '' NOT NULL, 
	PRIMARY KEY (model_id, version), 
	CONSTRAINT fk_mv_model FOREIGN KEY(model_id) REFERENCES registered_models (id) ON DELETE CASCADE
)
-- ;
CREATE INDEX ix_model_versions_run_id ON model_versions (run_id)
-- ;
CREATE TABLE model_version_tags (
	model_id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (model_id, version, "key"), 
	CONSTRAINT fk_mv_tags_version FOREIGN KEY(model_id, version) REFERENCES model_versions (model_id, version) ON DELETE CASCADE
)
-- ;
CREATE TABLE registered_model_aliases (
	model_id INTEGER NOT NULL, 
	alias VARCHAR(256) NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (model_id, alias), 
	CONSTRAINT fk_rm_aliases_version FOREIGN KEY(model_id, version) REFERENCES model_versions (model_id, version) ON DELETE CASCADE
)
-- ;
INSERT INTO "alembic_version_registry" ("version_num") VALUES ('r0003_logged_model_id')
