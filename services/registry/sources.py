"""Checks a model version's ``source`` so that registering cannot expose files a caller could
not otherwise read (REFERENCE.md, model registry).

- ``runs:/<run_id>/<path>``: the run is looked up through the tracking service; the path must be
  a clean relative path; the files are then at ``<run artifact_uri>/<path>``.
- ``models:/<name>/<version>``: another version's files (the store resolves it).
- ``models:/<model_id>``: an MLflow 3 logged model's files; the model is looked up through the
  tracking service (its artifact location is where the files are).
- A local path or ``file:`` URI: only with ``run_id``, and only inside that run's (local)
  artifact root, symlinks resolved.
- Any other URI (``s3://``, ``gs://``, ``mlflow-artifacts:/``, ...): accepted unless it climbs
  with ``..`` — plainly or percent-encoded, decoded repeatedly — or carries control characters.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import grpc

from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.artifacts.v1 import artifacts_service_pb2, artifacts_service_pb2_grpc
from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid.context.tags import MLFLOW_MODEL_VERSIONS
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable
from mlgrid.limits import MAX_SOURCE_LENGTH
from mlgrid.protocol import CHANNEL_OPTIONS
from mlgrid.tunnels import Tunnels
from mlgrid.uris import uri_scheme
from mlgrid_services.common import paths
from mlgrid_services.common.auth.outgoing import as_service
from mlgrid_services.common.auth.settings import AuthSettings
from mlgrid_services.common.location_policy import LocationPolicy
from mlgrid_services.common.validation import shorten, validate_run_id

_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/]+)/(?P<version>\d+)/?$")
#: MLflow 3's URI of a logged model: models:/<model_id> (one segment).
_LOGGED_MODEL = re.compile(r"^models:/(?P<model_id>[A-Za-z0-9][\w-]{0,35})/?$")

LOCAL_HINT = (
    "a local path is only accepted with run_id, inside the artifact root of that run; "
    "register a runs:/<run_id>/<path> URI instead"
)


@dataclass(frozen=True)
class CheckedSource:
    """The accepted source and where its files really are ('' = at ``source`` itself)."""

    source: str
    storage_location: str = ""
    #: The run named inside a runs:/ source.
    run_id: str = ""
    #: For models:/<name>/<version> sources: the version whose files are reused.
    model_version: tuple[str, int] | None = None
    #: For models:/<model_id> sources: the MLflow 3 logged model whose files these are.
    logged_model_id: str = ""
    #: A path (or file: URI) on the artifact root of ``run_id``.
    source_is_local: bool = False


#: Looks a run up and returns its artifact_uri (raises ResourceDoesNotExist when missing).
RunArtifactLookup = Callable[[str], str]


@runtime_checkable
class LoggedModelLookup(Protocol):
    """A run lookup that can also find MLflow 3 logged models (TrackingRunLookup)."""

    def __call__(self, run_id: str) -> str: ...

    def logged_model(self, model_id: str) -> tuple[str, str, str]: ...

    def record_version(self, model_id: str, name: str, version: str) -> None: ...


@runtime_checkable
class FilesLookup(Protocol):
    """A lookup that can also tell whether a location holds files (TrackingRunLookup)."""

    def has_files(self, location: str) -> bool: ...


def check_source(
    source: str,
    run_id: str,
    run_artifact_uri: RunArtifactLookup,
    policy: LocationPolicy | None = None,
) -> CheckedSource:
    """The checked form of ``source`` (InvalidParameterValue naming it when refused). A URI of
    any other scheme must lie inside the deployment's allowed artifact locations (``policy``)."""
    if not source:
        raise InvalidParameterValue("source is required: the runs:/ URI or location of the model")
    if len(source) > MAX_SOURCE_LENGTH:
        raise InvalidParameterValue(
            f"source {shorten(source)} is too long: at most {MAX_SOURCE_LENGTH} characters"
        )
    decoded = paths.decode_fully(source, "source")
    scheme = decoded.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][\w+.\-]*:", decoded) else ""
    if scheme == "runs":
        return _check_runs_source(source, decoded, run_id, run_artifact_uri)
    if scheme == "models":
        logged = _LOGGED_MODEL.match(decoded)
        if logged is not None:
            return CheckedSource(source, logged_model_id=logged["model_id"])
        match = _MODELS_VERSION.match(decoded)
        if match is None:
            raise InvalidParameterValue(
                f"source {source!r} is not allowed: a models:/ source must name one version, "
                "as models:/<name>/<version>, or a logged model, as models:/<model_id>"
            )
        return CheckedSource(source, model_version=(match["name"], int(match["version"])))
    if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        return _check_local_source(source, run_id, run_artifact_uri)
    paths.check_uri(source, "source")  # climbing, encoded climbing, control characters
    if policy is not None:
        policy.check(source, "source")
    return CheckedSource(source)


def _check_runs_source(
    source: str, decoded: str, run_id: str, run_artifact_uri: RunArtifactLookup
) -> CheckedSource:
    rest = decoded[len("runs:") :]
    if not rest.startswith("/") or rest.startswith("//"):
        raise InvalidParameterValue(
            f"source {source!r} is not a runs:/ URI: use runs:/<run_id>/<path>"
        )
    source_run, _, path = rest[1:].partition("/")
    validate_run_id(source_run, "run id in source")
    relative = paths.check_relative_path(path, f"path of source {source!r}:")
    if run_id and run_id != source_run:
        raise InvalidParameterValue(
            f"run_id {run_id!r} differs from the run named in source {source!r}; "
            "leave run_id empty or make them agree"
        )
    artifact_uri = run_artifact_uri(source_run).rstrip("/")
    location = f"{artifact_uri}/{relative}" if relative else artifact_uri
    return CheckedSource(source, storage_location=location, run_id=source_run)


def _check_local_source(
    source: str, run_id: str, run_artifact_uri: RunArtifactLookup
) -> CheckedSource:
    parsed = paths.check_uri(source, "source")  # relative paths and climbs are refused here
    if not run_id:
        raise InvalidParameterValue(f"source {source!r} is not allowed: {LOCAL_HINT}")
    validate_run_id(run_id)
    root = run_artifact_uri(run_id)
    root_parsed = paths.check_uri(root, "run artifact_uri")
    if not root_parsed.is_local or not paths.is_inside(parsed, root_parsed):
        raise InvalidParameterValue(
            f"source {source!r} is not allowed: it lies outside the artifact root {root!r} of "
            f"run {run_id!r}; {LOCAL_HINT}"
        )
    return CheckedSource(source, source_is_local=True)


def _versions_listed(value: str) -> list[object]:
    """The tag's list, or an empty one when it is missing or not a JSON list."""
    try:
        listed = json.loads(value) if value else []
    except ValueError:
        return []
    return listed if isinstance(listed, list) else []


class TrackingRunLookup:
    """Finds a run's artifact root through the tracking service, and asks the artifacts service
    whether a source has files: the registry's calls to the other services.

    They go the way an SDK client's go (mlgrid.tunnels): straight to the backend when the
    gateway announces it on this host (``mlgrid up``), else through the gateway's tunnel to it,
    else through the gateway's port. The gateway's relay would otherwise cost a registration
    more CPU than anything but the registry's own work.

    A run's ``artifact_uri`` is fixed when the run is created and run ids are never reused, so
    answers are cached (bounded): registering many versions from one run costs one lookup.
    """

    CACHE_SIZE = 10_000

    def __init__(
        self, target: str | None, timeout: float = 30.0, auth: AuthSettings | None = None
    ) -> None:
        self.target = target
        self._auth = auth or AuthSettings()
        self.timeout = timeout
        self._channel: grpc.Channel | None = None
        self._tunnels: Tunnels | None = None
        #: Per service, its stub on the gateway port (for routes the tunnels leave to it).
        self._gateway_stubs: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: run id -> (artifact_uri, experiment_id)
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def _tracking(self) -> tracking_service_pb2_grpc.TrackingServiceStub:
        stub: tracking_service_pb2_grpc.TrackingServiceStub = self._stub(
            "tracking", "", tracking_service_pb2_grpc.TrackingServiceStub
        )
        return stub

    def _artifacts(self, location: str) -> artifacts_service_pb2_grpc.ArtifactsServiceStub:
        stub: artifacts_service_pb2_grpc.ArtifactsServiceStub = self._stub(
            "artifacts", f"{uri_scheme(location)}:", artifacts_service_pb2_grpc.ArtifactsServiceStub
        )
        return stub

    def _stub(self, service: str, route: str, stub_class: Callable[[grpc.Channel], Any]) -> Any:
        """The stub for ``service``'s calls on ``route`` (see the class's doc)."""
        with self._lock:
            if self._channel is None:
                if not self.target:
                    raise TemporarilyUnavailable(
                        "the registry cannot check a model version's source: it has no route "
                        "to the tracking and artifacts services (gateway_target is not "
                        "configured)"
                    )
                self._channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
                host = self.target.rpartition(":")[0].strip("[]")
                self._tunnels = Tunnels(self._channel, host, CHANNEL_OPTIONS)
            gateway, tunnels = self._channel, self._tunnels
        assert tunnels is not None

        def with_credentials(channel: grpc.Channel) -> Any:
            return stub_class(as_service(channel, self._auth, "registry"))

        # The tunnels decide once per route (outside the lock: a route's first call may wait
        # for the gateway's answer) and keep the stub.
        stub = tunnels.stub(service, route, with_credentials)
        if stub is None:
            stub = self._gateway_stubs.get(service)
            if stub is None:
                stub = self._gateway_stubs.setdefault(service, with_credentials(gateway))
        return stub

    def __call__(self, run_id: str) -> str:
        return self._run(run_id)[0]

    def experiment_of(self, run_id: str) -> str:
        """The experiment of a run (ResourceDoesNotExist when there is none)."""
        return self._run(run_id)[1]

    def _run(self, run_id: str) -> tuple[str, str]:
        with self._lock:
            cached = self._cache.get(run_id)
            if cached is not None:
                self._cache.move_to_end(run_id)
                return cached
        request = tracking_service_pb2.GetRunRequest(run_id=run_id)
        try:
            response = self._tracking().GetRun(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        found = (str(response.run.info.artifact_uri), str(response.run.info.experiment_id))
        with self._lock:
            self._cache[run_id] = found
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    def logged_model(self, model_id: str) -> tuple[str, str, str]:
        """The artifact location, source run id and experiment id of an MLflow 3 logged model
        (ResourceDoesNotExist when there is none)."""
        request = tracking_service_pb2.GetLoggedModelRequest(model_id=model_id)
        try:
            response = self._tracking().GetLoggedModel(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        info = response.model.info
        return str(info.artifact_uri), str(info.source_run_id), str(info.experiment_id)

    def record_version(self, model_id: str, name: str, version: str) -> None:
        """Adds ``{"name", "version"}`` to the logged model's ``mlflow.modelVersions`` tag, as
        MLflow's server does after registering a version made from a logged model (its UI and
        ``LoggedModel.registrations`` read that tag). Two registrations of one model racing
        may each write the list without the other: the versions themselves are not affected."""
        try:
            model = (
                self._tracking()
                .GetLoggedModel(
                    tracking_service_pb2.GetLoggedModelRequest(model_id=model_id),
                    timeout=self.timeout,
                )
                .model
            )
            current = next((t.value for t in model.info.tags if t.key == MLFLOW_MODEL_VERSIONS), "")
            # A number, as MLflow's server writes it (its client, registering through
            # mlflow.register_model, appends the same version again as text).
            entry = {"name": name, "version": int(version)}
            listed = _versions_listed(current)
            if entry in listed:
                return
            tag = common_pb2.Tag(key=MLFLOW_MODEL_VERSIONS, value=json.dumps([*listed, entry]))
            self._tracking().SetLoggedModelTags(
                tracking_service_pb2.SetLoggedModelTagsRequest(model_id=model_id, tags=[tag]),
                timeout=self.timeout,
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def has_files(self, location: str) -> bool:
        """Whether the artifacts service finds anything at ``location``: a directory with
        entries, or a file (looked up in its parent's listing). Asked of the artifacts service
        where its scheme is served, so every scheme is checked where the files really are."""
        stub = self._artifacts(location)
        parent, _, name = location.rstrip("/").rpartition("/")
        try:
            listed = stub.ListArtifacts(
                artifacts_service_pb2.ListArtifactsRequest(artifact_uri=location, page_size=1),
                timeout=self.timeout,
            )
            if listed.files:
                return True
            siblings = stub.ListArtifacts(
                artifacts_service_pb2.ListArtifactsRequest(artifact_uri=parent),
                timeout=self.timeout,
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise from_rpc_error(err) from None
        return any(
            f.path.rstrip("/").rsplit("/", 1)[-1] == name and not f.is_dir for f in siblings.files
        )

    def close(self) -> None:
        with self._lock:
            channel, tunnels = self._channel, self._tunnels
            self._channel = self._tunnels = None
            self._gateway_stubs = {}
        if tunnels is not None:
            tunnels.close()
        if channel is not None:
            channel.close()
