"""A run submitted to the projects service, seen from the client."""

from __future__ import annotations

import time
from collections.abc import Iterator

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.projects.backend import TERMINAL_STATUSES, LogChunk, SubmittedRun
from mlgrid.transport import Transport

__all__ = ["RemoteSubmittedRun", "status_name"]

_STREAMS = {
    pb.LOG_STREAM_STDOUT: "stdout",
    pb.LOG_STREAM_STDERR: "stderr",
    pb.LOG_STREAM_SYSTEM: "system",
}
#: Longest single WaitRun call; waits are repeated so no call outlives a proxy's idle limit.
_WAIT_SLICE = 30.0


def status_name(status: int) -> str:
    """``PROJECT_RUN_STATUS_FINISHED`` → ``"FINISHED"``."""
    return pb.ProjectRunStatus.Name(status).removeprefix("PROJECT_RUN_STATUS_")  # type: ignore[arg-type]


class RemoteSubmittedRun(SubmittedRun):
    """Controls a run through the projects service (any backend behind the gateway)."""

    def __init__(self, transport: Transport, backend: str, run_id: str) -> None:
        self._transport = transport
        self._backend = backend
        self._run_id = run_id
        #: Why the run failed, once known (the service's message).
        self.message = ""
        #: Exit code of the run's process, once it has ended.
        self.exit_code: int | None = None

    @property
    def run_id(self) -> str:
        return self._run_id

    def __repr__(self) -> str:
        return f"<SubmittedRun run_id={self._run_id!r} backend={self._backend!r}>"

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the run ends (or ``timeout`` seconds); True when it FINISHED."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = (
                _WAIT_SLICE if deadline is None else min(_WAIT_SLICE, deadline - time.monotonic())
            )
            answer = self._transport.call(
                self._transport.projects.WaitRun,
                pb.WaitRunRequest(
                    backend=self._backend, run_id=self._run_id, timeout_seconds=max(left, 0.001)
                ),
                timeout=max(left, 0.001) + 30,
            )
            status = status_name(answer.status)
            if status in TERMINAL_STATUSES:
                self.message = answer.message
                self.exit_code = answer.exit_code if answer.HasField("exit_code") else None
                return status == "FINISHED"
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def get_status(self) -> str:
        """ "RUNNING", "SCHEDULED", "FINISHED", "FAILED" or "KILLED"."""
        answer = self._transport.call(
            self._transport.projects.GetRunStatus,
            pb.GetRunStatusRequest(backend=self._backend, run_id=self._run_id),
        )
        self.message = answer.message
        return status_name(answer.status)

    def cancel(self) -> None:
        """Terminates the run's processes; the run becomes KILLED unless it had ended."""
        self._transport.call(
            self._transport.projects.CancelRun,
            pb.CancelRunRequest(backend=self._backend, run_id=self._run_id),
        )

    def logs(self, follow: bool = False) -> Iterator[LogChunk]:
        """Output written so far; with ``follow``, then live output until the run ends."""
        request = pb.StreamRunLogsRequest(backend=self._backend, run_id=self._run_id, follow=follow)
        chunks: Iterator[pb.StreamRunLogsResponse] = self._transport.stream(
            self._transport.projects.StreamRunLogs,  # type: ignore[arg-type]
            request,
        )
        for chunk in chunks:
            yield LogChunk(
                stream=_STREAMS.get(chunk.stream, "stdout"),
                data=chunk.data,
                timestamp=chunk.timestamp,
            )
