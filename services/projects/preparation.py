"""From a submission to a validated project: fetch, load, check parameters, plan the env.

Everything that can be wrong with a submission (bad URI, invalid MLproject, unknown entry
point, missing or mistyped parameter, missing Python or conda) is found here, before a
tracking run is created, and reported to the caller as InvalidParameterValue.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import MAX_RUN_TAG_VALUE_LENGTH
from mlgrid.projects.fetch import FetchedProject, fetch_project
from mlgrid.projects.params import ResolvedParameters, build_command, resolve_parameters
from mlgrid.projects.spec import EntryPoint, Project, load_project

from .environments import EnvironmentPlan, plan_environment
from .local_backend import PreparedRun

__all__ = ["LoadedProject", "Submission", "load_submission", "prepare_local", "run_tags"]

#: Tag keys (MLflow's names, which users and tools rely on).
SOURCE_TYPE = "mlflow.source.type"
SOURCE_NAME = "mlflow.source.name"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_REPO_URL = "mlflow.source.git.repoURL"
LEGACY_GIT_REPO_URL = "mlflow.gitRepoURL"
GIT_BRANCH = "mlflow.source.git.branch"
ENTRY_POINT = "mlflow.project.entryPoint"
BACKEND = "mlflow.project.backend"
PROJECT_ENV = "mlflow.project.env"
RUN_NAME = "mlflow.runName"
USER = "mlflow.user"


@dataclass
class Submission:
    """What a client asked for (the SubmitRun request, as plain values)."""

    uri: str
    entry_point: str = "main"
    version: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""
    experiment_name: str = ""
    backend: str = "local"
    backend_config: dict[str, Any] = field(default_factory=dict)
    env_manager: str | None = None
    run_name: str = ""
    tracking_uri: str = ""
    user_id: str = ""
    working_directory: str = ""
    build_image: bool = False
    #: Store named by the caller's metadata (forwarded on tracking calls and to the child).
    store_uri: str | None = None

    @property
    def base_dir(self) -> Path:
        return Path(self.working_directory) if self.working_directory else Path.cwd()


@dataclass
class LoadedProject:
    """A fetched and validated project."""

    workdir: Path
    fetched: FetchedProject
    project: Project
    entry: EntryPoint
    params: ResolvedParameters
    #: The environment plan (local backend only).
    plan: EnvironmentPlan | None

    def discard(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def work_root() -> Path | None:
    """``MLGRID_PROJECTS_WORK_DIR`` (else the system's temporary directory)."""
    raw = os.environ.get("MLGRID_PROJECTS_WORK_DIR")
    if raw:
        Path(raw).mkdir(parents=True, exist_ok=True)
        return Path(raw)
    return None


def load_submission(sub: Submission, plan_env: bool) -> LoadedProject:
    """Fetches the project into a fresh working copy and validates the submission."""
    if sub.working_directory and not Path(sub.working_directory).is_absolute():
        raise InvalidParameterValue(
            f"working_directory {sub.working_directory!r} must be an absolute path"
        )
    workdir = Path(tempfile.mkdtemp(prefix="mlgrid-run-", dir=work_root()))
    try:
        fetched = fetch_project(sub.uri, sub.version, workdir / "project", sub.base_dir)
        project = load_project(fetched.directory)
        entry = project.get_entry_point(sub.entry_point or "main")
        params = resolve_parameters(entry, sub.parameters, sub.base_dir)
        build_command(entry, params.declared, params.extra)  # template errors surface now
        plan = plan_environment(project, sub.env_manager) if plan_env else None
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return LoadedProject(workdir, fetched, project, entry, params, plan)


def run_tags(sub: Submission, loaded: LoadedProject) -> dict[str, str]:
    """Run context tags of a project run."""
    fetched = loaded.fetched
    tags = {
        SOURCE_TYPE: "PROJECT",
        SOURCE_NAME: fetched.source_name,
        ENTRY_POINT: sub.entry_point or "main",
        BACKEND: sub.backend,
        PROJECT_ENV: loaded.plan.manager if loaded.plan else _declared_env(sub, loaded.project),
    }
    if fetched.git_commit:
        tags[GIT_COMMIT] = fetched.git_commit
    if fetched.git_repo_url:
        tags[GIT_REPO_URL] = fetched.git_repo_url
        tags[LEGACY_GIT_REPO_URL] = fetched.git_repo_url
    if fetched.git_branch:
        tags[GIT_BRANCH] = fetched.git_branch
    if sub.run_name:
        tags[RUN_NAME] = sub.run_name
    if sub.user_id:
        tags[USER] = sub.user_id
    return {k: v[:MAX_RUN_TAG_VALUE_LENGTH] for k, v in tags.items()}


def _declared_env(sub: Submission, project: Project) -> str:
    """The environment a non-local backend is asked for (it decides how to provide it)."""
    declared = {"python": "virtualenv", "conda": "conda", "docker": "docker"}
    return sub.env_manager or declared.get(project.env_type or "", "local")


def prepare_local(
    project_uri: str,
    entry_point: str,
    params: dict[str, str],
    version: str | None,
    backend_config: dict[str, Any],
    tracking_uri: str,
    experiment_id: str,
    run_id: str,
) -> PreparedRun:
    """A PreparedRun for any project URI, fetched into a working copy of its own."""
    sub = Submission(
        uri=project_uri,
        entry_point=entry_point,
        version=version,
        parameters=dict(params),
        env_manager=backend_config.get("env_manager") or None,
        working_directory=str(backend_config.get("working_directory") or ""),
    )
    loaded = load_submission(sub, plan_env=True)
    assert loaded.plan is not None
    return PreparedRun(
        run_id=run_id,
        experiment_id=experiment_id,
        workdir=loaded.workdir,
        project_dir=loaded.fetched.directory,
        entry=loaded.entry,
        params=loaded.params,
        plan=loaded.plan,
        tracking_uri=tracking_uri,
    )
