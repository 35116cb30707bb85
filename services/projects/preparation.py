"""From a submission to a validated RunRequest: fetch, load, check parameters.

Everything that can be wrong with a submission (bad URI, invalid MLproject, unknown entry
point, missing or mistyped parameter) is found here, and what only the chosen backend can judge
(a missing Python or conda, a bad docker_env volume) by its ``check``, before a tracking run is
created; both are reported to the caller as InvalidParameterValue.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import MAX_RUN_TAG_VALUE_LENGTH
from mlgrid.projects.backend import RunRequest
from mlgrid.projects.fetch import FetchedProject, SourceTooLarge, fetch_project
from mlgrid.projects.params import build_command, resolve_parameters
from mlgrid.projects.spec import Project, load_project

from .source_policy import SourcePolicy, check_project_source, source_too_large

__all__ = ["LoadedProject", "Submission", "load_submission", "run_tags"]

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
    #: An existing active run to execute in (None: create one).
    run_id: str | None = None

    @property
    def base_dir(self) -> Path:
        return Path(self.working_directory) if self.working_directory else Path.cwd()


@dataclass
class LoadedProject:
    """A fetched and validated project, as the request every backend is handed."""

    request: RunRequest
    fetched: FetchedProject

    @property
    def project(self) -> Project:
        return self.request.project

    def discard(self) -> None:
        shutil.rmtree(self.request.workdir, ignore_errors=True)


def work_root() -> Path | None:
    """``MLGRID_PROJECTS_WORK_DIR`` (else the system's temporary directory)."""
    raw = env.MLGRID_PROJECTS_WORK_DIR.get()
    if raw:
        Path(raw).mkdir(parents=True, exist_ok=True)
        return Path(raw)
    return None


def load_submission(sub: Submission, tracking_uri: str) -> LoadedProject:
    """Fetches the project into a fresh working copy and validates the submission."""
    if sub.working_directory and not Path(sub.working_directory).is_absolute():
        raise InvalidParameterValue(
            f"working_directory {sub.working_directory!r} must be an absolute path"
        )
    workdir = Path(tempfile.mkdtemp(prefix="mlgrid-run-", dir=work_root()))
    try:
        policy = SourcePolicy.from_env()
        check_project_source(sub.uri, policy)  # the deployment's policy, before any fetch
        try:
            fetched = fetch_project(
                sub.uri,
                sub.version,
                workdir / "project",
                sub.base_dir,
                max_bytes=policy.max_source_bytes,
            )
        except SourceTooLarge:
            raise source_too_large(sub.uri, policy) from None
        project = load_project(fetched.directory)
        entry = project.get_entry_point(sub.entry_point or "main")
        params = resolve_parameters(entry, sub.parameters, sub.base_dir)
        build_command(entry, params.declared, params.extra)  # template errors surface now
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    request = RunRequest(
        backend=sub.backend,
        project=project,
        entry=entry,
        params=params,
        workdir=workdir,
        tracking_uri=tracking_uri,
        user_params=dict(sub.parameters),
        version=fetched.git_commit,
        backend_config=dict(sub.backend_config),
        env_manager=sub.env_manager,
        build_image=sub.build_image,
        working_directory=sub.working_directory,
        store_uri=sub.store_uri,
    )
    return LoadedProject(request, fetched)


def run_tags(sub: Submission, loaded: LoadedProject) -> dict[str, str]:
    """Run context tags of a project run."""
    fetched = loaded.fetched
    tags = {
        SOURCE_TYPE: "PROJECT",
        SOURCE_NAME: fetched.source_name,
        ENTRY_POINT: sub.entry_point or "main",
        BACKEND: sub.backend,
        PROJECT_ENV: project_env(sub.env_manager, loaded.project),
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


def project_env(env_manager: str | None, project: Project) -> str:
    """The mlflow.project.env tag: the manager asked for, else what the project declares."""
    declared = {"python": "virtualenv", "conda": "conda", "docker": "docker"}
    return env_manager or declared.get(project.env_type or "", "local")
