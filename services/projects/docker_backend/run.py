"""A run of the docker backend: one container, supervised by a thread of the projects service.

While the run is SCHEDULED the thread connects to the engine, builds the project image
(``--build-image``) or makes sure the project's image is there (pulling it if it must), and
downloads remote ``path`` parameters. Then it creates the container (labelled with the run id,
recorded for recovery), attaches to it and starts it (RUNNING), copies its stdout and stderr
to the run's log as they come, and when it exits maps the exit code to FINISHED / FAILED, ends
the tracking run and removes the container. Cancel stops the container (SIGTERM, then SIGKILL
after the grace) and the run ends KILLED. Whatever goes wrong, the container is removed:
nothing is left running.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import BackendHost, LogChunk, OwnedHandle, RunRequest, SubmittedRun
from mlgrid.projects.params import build_command, needs_download

from ..containers.engine import connect
from ..containers.images import (
    PROJECT_CODE_DIR,
    build_project_image,
    ensure_image,
    image_repository,
)
from ..local_backend import TRACKING_STATUS
from ..logbuffer import LogBuffer
from .container_spec import container_spec, docker_env_of

log = logging.getLogger(__name__)

__all__ = ["RUN_ID_LABEL", "Adopted", "DockerSubmittedRun"]

#: Label carrying the tracking run id on every container the backend starts.
RUN_ID_LABEL = "org.mlgrid.run-id"
DOCKER_IMAGE_URI_TAG = "mlflow.docker.image.uri"
DOCKER_IMAGE_ID_TAG = "mlflow.docker.image.id"
#: Seconds the output reader has, once the container exited, to copy what its stream still
#: carries. A stream that has not ended by then is cut and closed: the reader copies nothing
#: more, and the rest comes from the container's whole log, so the run ends promptly with its
#: output whole and nothing in it twice.
LOG_SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Adopted:
    """A container left by a previous service instance, taken over by this one."""

    run_id: str
    container_id: str
    store_uri: str | None
    workdir: str | None


class DockerSubmittedRun(SubmittedRun):
    """A project run in a container."""

    def __init__(
        self,
        host: BackendHost,
        request: RunRequest | None = None,
        adopted: Adopted | None = None,
    ) -> None:
        assert (request is None) != (adopted is None)
        self._host = host
        self._request = request
        self._adopted = adopted
        self._run_id = request.run_id if request else adopted.run_id  # type: ignore[union-attr]
        self._store_uri = request.store_uri if request else adopted.store_uri  # type: ignore[union-attr]
        self.log = LogBuffer(host.log_budget)
        self._status = "RUNNING" if adopted else "SCHEDULED"
        self.exit_code: int | None = None
        self.message = ""
        self._cancelled = False
        self._stop_status = ("KILLED", "cancelled")
        self._container: Any = None
        #: Streams of the container's output as it comes (see _attach and _follow_log).
        self._sources: list[Any] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(
            target=self._supervise, name=f"docker-run-{self._run_id[:8]}", daemon=True
        ).start()

    # -- SubmittedRun -----------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._run_id

    def get_status(self) -> str:
        return self._status

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        return self._status == "FINISHED"

    def cancel(self) -> None:
        """Stops the container; the run ends KILLED."""
        self._stop("KILLED", "cancelled", "cancel requested")

    def abort(self, reason: str) -> None:
        """Stops the run because the service stops; it ends FAILED with ``reason``."""
        self._stop("FAILED", reason, reason)

    def logs(self, follow: bool = False) -> Iterator[LogChunk]:
        position = 0
        while True:
            entries, position, complete = self.log.read(position, wait=1.0 if follow else 0.0)
            for entry in entries:
                yield LogChunk(entry.stream, entry.data, entry.timestamp)
            if complete or not follow:
                return
            if not entries:
                yield LogChunk("system", b"", 0)  # a heartbeat: lets a server notice a gone client

    # -- control ----------------------------------------------------------------------------

    def _stop(self, status: str, message: str, note: str) -> None:
        with self._lock:
            if self._done.is_set() or self._cancelled:
                container = None
            else:
                self._cancelled = True
                self._stop_status = (status, message)
                container = self._container
                self.log.system(f"[mlgrid] {note}: stopping the run's container\n")
        if container is not None:
            try:
                container.stop(timeout=int(self._host.kill_grace))
            except Exception as exc:  # already gone: the supervisor sees it exit
                log.debug("stopping container of run %s: %s", self._run_id, exc)
        self._done.wait(self._host.kill_grace + 10)

    # -- supervision ------------------------------------------------------------------------

    def _supervise(self) -> None:
        status = "FAILED"
        try:
            status = self._execute()
        except InvalidParameterValue as exc:
            self.message = exc.message
        except Exception as exc:  # a bug must still end the run, not leave it RUNNING
            log.exception("docker run %s failed", self._run_id)
            self.message = f"{type(exc).__name__}: {exc}"
        if self._cancelled:
            status, self.message = self._stop_status
        if status != "FINISHED" and self.message:
            self.log.system(f"[mlgrid] {self.message}\n")
        self._finish(status)

    def _execute(self) -> str:
        client = connect()
        if self._adopted is not None:
            self._container = client.containers.get(self._adopted.container_id)
            if self._container.status == "created":
                # The previous instance died between creating and starting it: the run never
                # ran, and nobody can say what it should have been given.
                raise InvalidParameterValue(
                    "the projects service stopped before the run's container started"
                )
            self.log.system(f"[mlgrid] following container {self._container.short_id} again\n")
            self._sources = _follow_log(self._container)
        else:
            container = self._create(client)
            if container is None:
                return "KILLED"
        return self._follow()

    def _create(self, client: Any) -> Any:
        request = self._request
        assert request is not None
        env = docker_env_of(request)
        if request.build_image:
            built = build_project_image(
                client,
                env.image,
                request.project_dir,
                image_repository(request.project.name),
                # With the store drivers, so one image serves a gateway and a local store alike
                # (and every project on this base shares one SDK layer).
                sdk_extras=("embedded",),
                log=self.log.system,
            )
            image, image_id = built.tag, built.image_id
            working_dir: str | None = PROJECT_CODE_DIR
        else:
            image = env.image
            image_id = ensure_image(client, image, "docker_env.image", self.log.system).id
            working_dir = None
        # MLflow's tags for docker runs: which image ran, exactly.
        self._host.set_tags(
            request.run_id,
            [(DOCKER_IMAGE_URI_TAG, image), (DOCKER_IMAGE_ID_TAG, image_id)],
            request.store_uri,
        )
        values, inputs = self._downloads(request)
        command = build_command(request.entry, values, request.params.extra)
        spec = container_spec(
            request,
            image,
            command,
            working_dir=working_dir,
            artifact_root=self._host.artifact_root,
        )
        if inputs is not None:
            spec.volumes[str(inputs)] = {"bind": str(inputs), "mode": "ro"}
        for note in spec.notes:
            self.log.system(f"[mlgrid] {note}")
        with self._lock:
            if self._cancelled:
                return None
            self.log.system(f"[mlgrid] running in {image}: {command}\n")
            container = client.containers.create(
                spec.image,
                spec.command,
                environment=spec.environment,
                volumes=spec.volumes,
                working_dir=spec.working_dir,
                network_mode="host",
                labels={RUN_ID_LABEL: request.run_id},
                name=f"mlgrid-run-{request.run_id}",
                detach=True,
            )
            self._container = container
            self._host.record(
                OwnedHandle(
                    request.run_id,
                    request.backend,
                    {
                        "container": container.id,
                        "store_uri": request.store_uri,
                        "workdir": str(request.workdir),
                    },
                )
            )
            # Attached before it starts, so its output is copied from its first byte.
            self._sources = _attach(container)
            # RUNNING before start: the first output can reach a follower at once.
            self._status = "RUNNING"
            container.start()
        return container

    def _downloads(self, request: RunRequest) -> tuple[dict[str, str], Path | None]:
        """Parameter values with remote ``path`` values downloaded (mounted read-only)."""
        values = dict(request.params.declared)
        inputs = None
        for name, value in values.items():
            if needs_download(request.params.types.get(name, "string"), value):
                inputs = request.workdir / "inputs"
                target = inputs / name
                target.mkdir(parents=True, exist_ok=True)
                self.log.system(f"[mlgrid] downloading {value} for parameter {name!r}\n")
                values[name] = self._host.download(value, target)
        return values, inputs

    def _follow(self) -> str:
        container = self._container
        followed = _Followed()
        readers = [
            threading.Thread(target=self._copy, args=(source, followed), daemon=True)
            for source in self._sources
        ]
        for reader in readers:
            reader.start()
        result = container.wait()
        settled_by = time.monotonic() + LOG_SETTLE_SECONDS
        for reader in readers:
            reader.join(timeout=max(0.0, settled_by - time.monotonic()))
        copied = followed.cut()
        if any(reader.is_alive() for reader in readers):
            log.info(
                "the output stream of run %s had not ended %g s after its container exited; "
                "the rest is read from its log",
                self._run_id,
                LOG_SETTLE_SECONDS,
            )
            for source in self._sources:
                _close(source)  # frees its reader and its connection
        self._copy_rest(container, copied)
        code = int(result.get("StatusCode", -1))
        self.exit_code = code
        if code == 0:
            return "FINISHED"
        self.message = f"exit code {code}"
        return "FAILED"

    def _copy(self, source: Any, followed: _Followed) -> None:
        """Copies what ``source`` (stream name and bytes) carries to the run's log as it
        comes, until it ends or ``followed`` is cut."""
        try:
            for stream, data in source:
                with followed.lock:
                    if followed.is_cut:
                        return
                    self.log.append(stream, data)
                    followed.copied[stream] += len(data)
        except Exception as exc:  # the engine went away, or the stream was closed: see _follow
            log.debug("output stream of run %s ended: %s", self._run_id, exc)

    def _copy_rest(self, container: Any, copied: dict[str, int]) -> None:
        """Appends what the attached stream did not copy: it may end before the container's
        last output, or not end in time (LOG_SETTLE_SECONDS). The container's whole log is
        still there until it is removed."""
        for stream, count in copied.items():
            try:
                whole = container.client.api.logs(
                    container.id, stdout=stream == "stdout", stderr=stream == "stderr"
                )
            except Exception as exc:  # the engine went away: what was copied is what there is
                log.debug("log of run %s not read again: %s", self._run_id, exc)
                return
            if len(whole) > count:
                self.log.append(stream, whole[count:])

    def _finish(self, status: str) -> None:
        container = self._container
        if container is not None:
            try:
                container.remove(force=True)
            except Exception as exc:
                log.warning("could not remove the container of run %s: %s", self._run_id, exc)
        try:
            self._host.end_run(self._run_id, TRACKING_STATUS[status], self._store_uri)
        except Exception as exc:  # tracking down: the run's own status is still reported
            log.warning("could not end tracking run %s: %s", self._run_id, exc)
            self.log.system(f"[mlgrid] could not update the tracking run: {exc}\n")
        self._host.forget(self._run_id)
        workdir = self._request.workdir if self._request else self._adopted.workdir  # type: ignore[union-attr]
        if workdir and not self._host.keep_workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
        self.log.system(f"[mlgrid] run {self._run_id} {status}\n")
        self._status = status
        self.log.close()
        self._done.set()


class _Followed:
    """What the output readers of one container copied, and whether they may copy more."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.copied = {"stdout": 0, "stderr": 0}
        self.is_cut = False

    def cut(self) -> dict[str, int]:
        """Stops the readers' copying; the bytes copied of each stream."""
        with self.lock:
            self.is_cut = True
            return dict(self.copied)


def _attach(container: Any) -> list[Any]:
    """The output of a container not started yet, as it comes: one stream of (stream name,
    bytes), or none if the engine would not attach (the output is then read from its log at
    the end).

    Attach, not the logs endpoint's follow: Podman (4.3) drops output from a followed log when
    the container writes fast (gaps of whole and partial lines, the log itself whole), and has
    ended a follow before a run's last line or only well after the container exited. The attach
    stream carries the output itself, in order, and ends with the container."""
    try:
        attached = container.client.api.attach(
            container.id, stdout=True, stderr=True, stream=True, logs=True, demux=True
        )
    except Exception as exc:
        log.warning("could not attach to container %s: %s", container.short_id, exc)
        return []
    return [_Output(attached)]


def _follow_log(container: Any) -> list[Any]:
    """The output of a running container taken over from another replica, from its first
    byte: the followed log of each stream. (Podman's attach does not replay what was written
    before it; its followed log may drop output written fast, which _copy_rest cannot mend.)"""
    try:
        return [
            _Output(
                container.client.api.logs(
                    container.id, stdout=stream == "stdout", stderr=stream == "stderr",
                    stream=True, follow=True,
                ),
                stream,
            )
            for stream in ("stdout", "stderr")
        ]  # fmt: skip
    except Exception as exc:  # the output is then read from the log at the end
        log.warning("could not follow the log of container %s: %s", container.short_id, exc)
        return []


class _Output:
    """An engine's output stream as (stream name, bytes) pairs: the followed log of the stream
    ``name``, or an attach stream of (stdout, stderr) pairs when ``name`` is None. ``close``
    ends it."""

    def __init__(self, stream: Any, name: str | None = None) -> None:
        self._stream = stream
        self._name = name

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for item in self._stream:
            if self._name is not None:
                named = {self._name: item}
            else:
                named = dict(zip(("stdout", "stderr"), item, strict=True))
            for stream, data in named.items():
                if data:
                    yield stream, data

    def close(self) -> None:
        self._stream.close()


def _close(stream: Any) -> None:
    try:
        stream.close()
    except Exception as exc:  # already gone with its connection
        log.debug("closing an output stream: %s", exc)
