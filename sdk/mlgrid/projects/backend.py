"""The one interface every project backend implements: built-in (local, docker, kubernetes) or
a plugin (entry-point group ``mlgrid.project_backend``).

The projects service fetches the project, validates the entry point and parameters, asks the
backend to :meth:`~ProjectBackend.check` the request (before anything is created), creates the
tracking run (tags, params), and hands the same :class:`RunRequest`, now carrying the run id, to
:meth:`~ProjectBackend.submit`, which starts the run and returns a :class:`SubmittedRun`.

Plugins written for MLflow's signature implement :meth:`~ProjectBackend.run` instead; their
``submit`` calls it with the request's values, so such plugins take the same path.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgrid.projects.params import ResolvedParameters
from mlgrid.projects.spec import EntryPoint, Project

__all__ = [
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "BackendHost",
    "LogChunk",
    "OwnedHandle",
    "ProjectBackend",
    "RunRequest",
    "SubmittedRun",
]

#: Status names a submitted run reports (MLflow's RunStatus names).
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
#: Statuses after which nothing changes any more.
TERMINAL_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})


@dataclass(frozen=True)
class LogChunk:
    """A piece of a run's output."""

    #: "stdout", "stderr" or "system" (messages of the runner: environment set-up, exit status).
    stream: str
    #: The bytes written.
    data: bytes
    #: When they were read, milliseconds since the epoch.
    timestamp: int


@dataclass(frozen=True)
class RunRequest:
    """One project run, validated: what every backend is handed.

    Built by the projects service from a SubmitRun call. During :meth:`ProjectBackend.check`
    ``run_id`` and ``experiment_id`` are still empty; :meth:`ProjectBackend.submit` receives the
    same request with both filled in (the tracking run exists by then).
    """

    #: The backend's name as the caller gave it ("local", "docker", a plugin's).
    backend: str
    #: The loaded project; ``project.directory`` is this run's own working copy.
    project: Project
    #: The entry point to run (declared, or a .py / .sh file of the project).
    entry: EntryPoint
    #: Parameter values after typing and defaults (not yet quoted into the command).
    params: ResolvedParameters
    #: The run's scratch directory (holds the working copy); the backend owns it after submit
    #: and removes it when the run ends.
    workdir: Path
    #: Tracking URI the run's code logs to.
    tracking_uri: str
    run_id: str = ""
    experiment_id: str = ""
    #: The tracking run's artifact URI (where what the run logs as artifacts goes).
    artifact_uri: str = ""
    #: The parameters exactly as the user gave them (what MLflow-style plugins receive).
    user_params: dict[str, str] = field(default_factory=dict)
    #: Git commit the working copy was taken from, if any.
    version: str | None = None
    #: The user's backend configuration (``--backend-config``).
    backend_config: dict[str, Any] = field(default_factory=dict)
    #: ``--env-manager`` (None: what the project declares).
    env_manager: str | None = None
    #: ``--build-image``: run in a new image FROM the project's, with the project inside.
    build_image: bool = False
    #: Where relative parameter paths were resolved from (the caller's working directory).
    working_directory: str = ""
    #: Store named by the caller's metadata (forwarded on tracking calls and to the run).
    store_uri: str | None = None
    #: With auth on: an access token acting as the submitter, for the run's code only (its
    #: environment's MLGRID_TRACKING_TOKEN and MLFLOW_TRACKING_TOKEN); revoked when the run ends.
    #: Never logged or put in a command line.
    tracking_token: str = field(default="", repr=False)

    @property
    def project_dir(self) -> Path:
        """The working copy's project directory (``#subdir`` applied); commands run there."""
        return self.project.directory

    @property
    def entry_point(self) -> str:
        return self.entry.name

    def for_run(self, run_id: str, experiment_id: str, artifact_uri: str = "") -> RunRequest:
        """This request for the tracking run created for it."""
        return dataclasses.replace(
            self, run_id=run_id, experiment_id=experiment_id, artifact_uri=artifact_uri
        )


@dataclass(frozen=True)
class OwnedHandle:
    """What a backend records about a run it started, to find it again after a restart.

    ``details`` is the backend's own (JSON-serialisable): a process id, a container id, a Job
    name. It is saved beside the run id and given back to :meth:`ProjectBackend.recover`.
    """

    run_id: str
    backend: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackendHost:
    """What the projects service offers the backends it hosts.

    Backends built by the service get it through :meth:`ProjectBackend.for_host`; a plugin that
    does not override that method is built without arguments and never sees it.
    """

    #: Ends a tracking run unless it ended already: (run_id, tracking status, store_uri).
    end_run: Callable[[str, int, str | None], None]
    #: Downloads a remote URI into a directory, returning the local path.
    download: Callable[[str, Path], str]
    #: Records (or updates) what the service must know to recover a run after a crash.
    record: Callable[[OwnedHandle], None]
    #: Drops the record of a run that has ended.
    forget: Callable[[str], None]
    #: Sets tags on a tracking run: (run_id, [(key, value), ...], store_uri).
    set_tags: Callable[[str, list[tuple[str, str]], str | None], None] = lambda _r, _t, _s: None
    #: Tracking URI through which the service itself reaches the stack as an SDK client.
    sdk_tracking_uri: str = ""
    #: Default artifact root of the deployment (handed to runs that serve an embedded store).
    artifact_root: str = ""
    #: Seconds between a polite stop and a kill on cancel.
    kill_grace: float = 10.0
    #: Bytes of output kept per run.
    log_budget: int = 8 * 1024 * 1024
    #: Keep working copies after runs end (debugging).
    keep_workdirs: bool = False
    #: Stores bytes as an artifact of a run: (run_id, store_uri, artifact path, data).
    #: Backends whose output lives elsewhere (a cluster's pods) keep it with the run this way.
    save_artifact: Callable[[str, str | None, str, bytes], None] | None = None


class SubmittedRun(ABC):
    """A run a backend has started; lets the caller follow and control it."""

    @property
    @abstractmethod
    def run_id(self) -> str:
        """The tracking run id."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the run ends (or ``timeout`` seconds pass); True when it FINISHED."""

    @abstractmethod
    def get_status(self) -> str:
        """One of :data:`RUN_STATUSES`."""

    @abstractmethod
    def cancel(self) -> None:
        """Stops the run; its status becomes KILLED unless it had already ended."""

    def logs(self, follow: bool = False) -> Iterator[LogChunk]:
        """The run's output so far (and, with ``follow``, live until it ends).

        Backends that keep no logs yield nothing.
        """
        return iter(())

    def taken_over(self, reason: str) -> None:
        """Another replica of the projects service took this run over: this one failed to renew
        its lease in time (a stall, a database outage) and must no longer act on the run.

        The default does nothing: a run the new owner re-attached to (a container, a Job) goes
        on, and what this instance still does to it (ending the tracking run when it ends) is
        what the new owner does too. A run only this instance can reach (a child process) stops.
        """
        return None


def _submit_through_run(self: ProjectBackend, request: RunRequest) -> SubmittedRun:
    """``submit`` of a backend written against MLflow's ``run`` signature."""
    config = dict(request.backend_config)
    config.setdefault("env_manager", request.env_manager)
    config.setdefault("build_image", request.build_image)
    config.setdefault("working_directory", request.working_directory)
    return self.run(
        str(request.project_dir),
        request.entry_point,
        dict(request.user_params),
        request.version,
        config,
        request.tracking_uri,
        request.experiment_id,
        request.run_id,
    )


class ProjectBackend(ABC):
    """Runs a project somewhere.

    Implement :meth:`submit` (the request object), or :meth:`run` (MLflow's plugin signature):
    a subclass that defines ``run`` and no ``submit`` gets a ``submit`` that calls its ``run``
    with the request's values. Plugins must be constructible without arguments; built-in
    backends take the service's :class:`BackendHost` through :meth:`for_host`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [c for c in cls.__mro__ if c is not ProjectBackend and c is not object]
        defines_submit = any("submit" in vars(c) for c in own)
        defines_run = any("run" in vars(c) for c in own)
        if defines_run and not defines_submit:
            cls.submit = _submit_through_run  # type: ignore[method-assign]

    @classmethod
    def for_host(cls, host: BackendHost) -> ProjectBackend:
        """The backend as the projects service builds it (plugins: ``cls()``)."""
        return cls()

    def check(self, request: RunRequest) -> None:
        """Refuses a request this backend cannot run, before its tracking run is created.

        Raise :class:`mlgrid.exceptions.InvalidParameterValue` naming the field at fault.
        """
        return None

    @abstractmethod
    def submit(self, request: RunRequest) -> SubmittedRun:
        """Starts the run and returns without waiting for it to end.

        The backend owns ``request.workdir`` from now on (removes it when the run ends) and
        ends the tracking run when the run ends, unless the run's code ended it.
        """

    def run(
        self,
        project_uri: str,
        entry_point: str,
        params: dict[str, str],
        version: str | None,
        backend_config: dict[str, Any],
        tracking_uri: str,
        experiment_id: str,
        run_id: str | None,
    ) -> SubmittedRun:
        """MLflow's plugin signature: starts ``entry_point`` and returns without waiting.

        ``project_uri`` is a local working copy prepared for this run (fetched, ``#subdir``
        applied); ``version`` the git commit it was taken from, if any. ``params`` are the
        user's values, not yet substituted. The run's code must log to ``tracking_uri`` into
        run ``run_id`` of ``experiment_id``. ``backend_config`` is the user's configuration plus
        ``env_manager``, ``build_image`` and ``working_directory``.
        """
        raise NotImplementedError(
            f"project backend {type(self).__name__} implements neither submit() nor run()"
        )

    def recover(self, handle: OwnedHandle) -> SubmittedRun | None:
        """A run a previous, dead service instance started with this backend.

        Return a SubmittedRun to go on supervising it (a Job still running in a cluster), or
        clean up what is left of it and return None: the service then marks the run FAILED.
        """
        return None
