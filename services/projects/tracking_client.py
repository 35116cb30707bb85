"""The projects service's calls to the tracking service, through the gateway.

A service never imports another service: it speaks the tracking contract over gRPC (the SDK's
stubs) to ``config.gateway_target``, exactly like any other client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import grpc

from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2, tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.limits import MAX_BATCH_PARAMS
from mlgrid.protocol import CHANNEL_OPTIONS, STORE_URI_METADATA
from mlgrid_services.common.auth.outgoing import as_service
from mlgrid_services.common.auth.settings import AuthSettings

__all__ = ["TERMINAL", "TrackingClient"]

TERMINAL = frozenset(
    {
        tracking_pb2.RUN_STATUS_FINISHED,
        tracking_pb2.RUN_STATUS_FAILED,
        tracking_pb2.RUN_STATUS_KILLED,
    }
)
_TIMEOUT = 60.0


class TrackingClient:
    """Experiments and runs, as the projects service needs them."""

    def __init__(self, target: str, auth: AuthSettings | None = None) -> None:
        self.target = target
        self._auth = auth or AuthSettings()
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    @property
    def _stub(self) -> tracking_service_pb2_grpc.TrackingServiceStub:
        with self._lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            channel = as_service(self._channel, self._auth, "projects")
            return tracking_service_pb2_grpc.TrackingServiceStub(channel)

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def _call(self, method: str, request: Any, store_uri: str | None = None) -> Any:
        metadata = [(STORE_URI_METADATA, store_uri)] if store_uri else None
        try:
            return getattr(self._stub, method)(request, metadata=metadata, timeout=_TIMEOUT)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def resolve_experiment(
        self, experiment_id: str, experiment_name: str, store_uri: str | None = None
    ) -> str:
        """The experiment to run in: by id, by name (created when missing), else "0"."""
        if experiment_id and experiment_name:
            raise InvalidParameterValue("give experiment_id or experiment_name, not both")
        if experiment_id:
            self._call(
                "GetExperiment",
                tracking_service_pb2.GetExperimentRequest(experiment_id=experiment_id),
                store_uri,
            )
            return experiment_id
        if not experiment_name:
            return "0"
        try:
            answer = self._call(
                "GetExperimentByName",
                tracking_service_pb2.GetExperimentByNameRequest(experiment_name=experiment_name),
                store_uri,
            )
            return str(answer.experiment.experiment_id)
        except ResourceDoesNotExist:
            created = self._call(
                "CreateExperiment",
                tracking_service_pb2.CreateExperimentRequest(name=experiment_name),
                store_uri,
            )
            return str(created.experiment_id)

    def resolve_existing(self, experiment_name: str, store_uri: str | None = None) -> str:
        """The id of the experiment named ``experiment_name`` (ResourceDoesNotExist if none)."""
        answer = self._call(
            "GetExperimentByName",
            tracking_service_pb2.GetExperimentByNameRequest(experiment_name=experiment_name),
            store_uri,
        )
        return str(answer.experiment.experiment_id)

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        run_name: str,
        tags: dict[str, str],
        store_uri: str | None = None,
    ) -> tracking_pb2.Run:
        request = tracking_service_pb2.CreateRunRequest(
            experiment_id=experiment_id,
            user_id=user_id,
            start_time=int(time.time() * 1000),
            run_name=run_name,
            tags=[common_pb2.Tag(key=k, value=v) for k, v in tags.items()],
        )
        return self._call("CreateRun", request, store_uri).run

    def log_params(self, run_id: str, params: dict[str, str], store_uri: str | None = None) -> None:
        items = [tracking_pb2.Param(key=k, value=v) for k, v in params.items()]
        for start in range(0, len(items), MAX_BATCH_PARAMS):
            self._call(
                "LogBatch",
                tracking_service_pb2.LogBatchRequest(
                    run_id=run_id, params=items[start : start + MAX_BATCH_PARAMS]
                ),
                store_uri,
            )

    def set_tags(
        self, run_id: str, tags: Iterable[tuple[str, str]], store_uri: str | None = None
    ) -> None:
        request = tracking_service_pb2.LogBatchRequest(
            run_id=run_id, tags=[common_pb2.Tag(key=k, value=v) for k, v in tags]
        )
        self._call("LogBatch", request, store_uri)

    def get_run(self, run_id: str, store_uri: str | None = None) -> tracking_pb2.Run:
        answer = self._call("GetRun", tracking_service_pb2.GetRunRequest(run_id=run_id), store_uri)
        return answer.run

    def artifact_uri(self, run_id: str, store_uri: str | None = None) -> str:
        """The root of the run's artifacts."""
        answer = self._call("GetRun", tracking_service_pb2.GetRunRequest(run_id=run_id), store_uri)
        return str(answer.run.info.artifact_uri)

    def get_status(self, run_id: str, store_uri: str | None = None) -> int:
        answer = self._call("GetRun", tracking_service_pb2.GetRunRequest(run_id=run_id), store_uri)
        return int(answer.run.info.status)

    def terminate_if_running(self, run_id: str, status: int, store_uri: str | None = None) -> bool:
        """Ends the run with ``status`` unless it has ended itself; True when this call did."""
        if self.get_status(run_id, store_uri) in TERMINAL:
            return False
        self._call(
            "UpdateRun",
            tracking_service_pb2.UpdateRunRequest(
                run_id=run_id,
                status=status,  # type: ignore[arg-type]
                end_time=int(time.time() * 1000),
            ),
            store_uri,
        )
        return True
