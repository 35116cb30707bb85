"""gRPC adapter of the projects service: proto in, ProjectRunner call, proto out."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.protocol import STORE_URI_METADATA

from .preparation import Submission
from .relay import is_relayed, relay_logs
from .runner import ProjectRunner, RunAnswer

__all__ = ["ProjectsServicer"]

_STATUS = {
    "RUNNING": pb.PROJECT_RUN_STATUS_RUNNING,
    "SCHEDULED": pb.PROJECT_RUN_STATUS_SCHEDULED,
    "FINISHED": pb.PROJECT_RUN_STATUS_FINISHED,
    "FAILED": pb.PROJECT_RUN_STATUS_FAILED,
    "KILLED": pb.PROJECT_RUN_STATUS_KILLED,
}
_STREAMS = {"stdout": pb.LOG_STREAM_STDOUT, "stderr": pb.LOG_STREAM_STDERR}
#: Largest log message sent (bigger chunks are split).
_MAX_CHUNK = 1024 * 1024


def _store_uri(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == STORE_URI_METADATA:
            return str(value)
    return None


def _run_id(value: str) -> str:
    if not value:
        raise InvalidParameterValue("run_id is required")
    return value


def _backend_config(raw: str) -> dict[str, object]:
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameterValue(f"backend_config_json is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidParameterValue(f"backend_config_json must be a JSON object, got {raw!r}")
    return config


class ProjectsServicer(pb_grpc.ProjectsServiceServicer):
    """Serves ProjectsService over a ProjectRunner."""

    def __init__(self, runner: ProjectRunner) -> None:
        self.runner = runner

    def _answer_fields(self, answer: RunAnswer) -> dict[str, object]:
        fields: dict[str, object] = {"status": _STATUS[answer.status], "message": answer.message}
        if answer.exit_code is not None:
            fields["exit_code"] = answer.exit_code
        return fields

    def SubmitRun(
        self, request: pb.SubmitRunRequest, context: grpc.ServicerContext
    ) -> pb.SubmitRunResponse:
        if not request.uri:
            raise InvalidParameterValue("uri (the project to run) is required")
        submission = Submission(
            uri=request.uri,
            entry_point=request.entry_point or "main",
            version=request.version or None,
            parameters=dict(request.parameters),
            experiment_id=request.experiment_id,
            experiment_name=request.experiment_name,
            backend=request.backend or "local",
            backend_config=_backend_config(request.backend_config_json),
            env_manager=request.env_manager or None,
            run_name=request.run_name,
            tracking_uri=request.tracking_uri,
            user_id=request.user_id,
            working_directory=request.working_directory,
            build_image=request.build_image,
            store_uri=_store_uri(context),
            run_id=request.run_id or None,
        )
        submitted = self.runner.submit(submission)
        return pb.SubmitRunResponse(run_id=submitted.run_id, status=_STATUS[submitted.get_status()])

    def GetRunStatus(
        self, request: pb.GetRunStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetRunStatusResponse:
        answer = self.runner.status(_run_id(request.run_id), _store_uri(context))
        return pb.GetRunStatusResponse(**self._answer_fields(answer))  # type: ignore[arg-type]

    def WaitRun(
        self, request: pb.WaitRunRequest, context: grpc.ServicerContext
    ) -> pb.WaitRunResponse:
        timeout: float | None = request.timeout_seconds or None
        remaining = context.time_remaining()
        if remaining is not None:
            # Answer (with the current status) before the caller's deadline expires.
            budget = max(remaining - 0.5, 0.0)
            timeout = budget if timeout is None else min(timeout, budget)
        answer = self.runner.wait(_run_id(request.run_id), timeout, _store_uri(context))
        return pb.WaitRunResponse(**self._answer_fields(answer))  # type: ignore[arg-type]

    def CancelRun(
        self, request: pb.CancelRunRequest, context: grpc.ServicerContext
    ) -> pb.CancelRunResponse:
        answer = self.runner.cancel(_run_id(request.run_id), _store_uri(context))
        return pb.CancelRunResponse(status=_STATUS[answer.status])

    def StreamRunLogs(
        self, request: pb.StreamRunLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamRunLogsResponse]:
        run_id = _run_id(request.run_id)
        try:
            chunks = self.runner.logs(run_id, request.follow)
        except ResourceDoesNotExist:
            # Another replica runs it: its output is there (relay.py).
            owner = None if is_relayed(context) else self.runner.owner_address(run_id)
            if owner is None:
                raise
            yield from relay_logs(owner, request, context)
            return
        for chunk in chunks:
            if not context.is_active():
                return  # the client went away; the run goes on
            if not chunk.data:
                continue  # heartbeat
            stream = _STREAMS.get(chunk.stream, pb.LOG_STREAM_SYSTEM)
            for start in range(0, len(chunk.data), _MAX_CHUNK):
                yield pb.StreamRunLogsResponse(
                    stream=stream,
                    data=chunk.data[start : start + _MAX_CHUNK],
                    timestamp=chunk.timestamp,
                )
