"""The ``kubernetes`` project backend: check, submit, and adopt Jobs after a restart.

``check`` refuses what is wrong with the backend configuration before a tracking run exists.
``submit`` reads the template, connects to the cluster and makes sure the service may create
Jobs there (so a wrong context, an unreachable API server or missing permissions are reported
to the caller at once, and the run is marked FAILED), then starts the run: the project image is
built and pushed, and the Job created, by the run's supervisor thread.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from mlgrid import environment
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import BackendHost, OwnedHandle, ProjectBackend, RunRequest
from mlgrid.projects.env_files import DockerEnv

from ..docker_backend.container_spec import docker_env_variables
from ..logbuffer import LogBuffer
from ..run_variables import run_variables, split_credentials
from .cluster import SERVICE_ACCOUNT_DIR, Cluster, connect
from .config import KubernetesConfig, parse_config
from .run_secret import create_secret, delete_secret, own_secret, secret_body
from .submitted import JobHandle, KubernetesSubmittedRun, RunHooks
from .template import JobRequest, parse_template, render_job, secret_name

__all__ = ["KUBE_TRACKING_URI_ENV", "KubernetesBackend", "api_error_message"]

#: MLflow's variable: the tracking URI handed to the Job when it differs from the service's.
KUBE_TRACKING_URI_ENV = "KUBE_MLFLOW_TRACKING_URI"  # MLflow's name; MLGRID_KUBE_TRACKING_URI wins
#: Tracking URIs a pod cannot use: a file of the service's machine.
_LOCAL_SCHEMES = ("sqlite:", "file:", "/")

#: Builds the run's project image and pushes it: (request, repository, output) -> image by
#: digest (``repository@sha256:…``).
ImagePublisher = Callable[[RunRequest, str, LogBuffer], str]


def api_error_message(exc: ApiException) -> str:
    """The message of the API server's ``Status`` body (else the HTTP reason)."""
    import json

    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or exc.status)[:1000]


class KubernetesBackend(ProjectBackend):
    """Runs docker_env projects as Kubernetes Jobs."""

    def __init__(
        self,
        host: BackendHost,
        publish: ImagePublisher,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> None:
        self.host = host
        self.publish = publish
        self.service_account_dir = service_account_dir

    @classmethod
    def for_host(cls, host: BackendHost) -> ProjectBackend:
        from .images import publish_project_image

        return cls(host, publish_project_image)

    # -- submission -----------------------------------------------------------------------------

    def _config(self, request: RunRequest) -> KubernetesConfig:
        base = Path(request.working_directory) if request.working_directory else None
        return parse_config(request.backend_config, base)

    def check(self, request: RunRequest) -> None:
        if not isinstance(request.project.env, DockerEnv):
            raise InvalidParameterValue(
                f"the kubernetes backend runs projects with a docker_env (the image the Job's "
                f"image is built FROM); project {request.project.name!r} declares "
                f"{request.project.env_type or 'no environment'}"
            )
        self._config(request)

    def _tracking_uri(self, request: RunRequest) -> str:
        uri = environment.MLGRID_KUBE_TRACKING_URI.get() or request.tracking_uri
        if not uri or uri.startswith(_LOCAL_SCHEMES):
            raise InvalidParameterValue(
                f"the kubernetes backend needs a tracking URI its pods can reach (grpc://… of a "
                f"gateway), not a local store; set {KUBE_TRACKING_URI_ENV} on the projects "
                "service or use a tracking server"
            )
        return uri

    def _namespace(self, config: KubernetesConfig, job: dict[str, Any], cluster: Cluster) -> str:
        return str(config.namespace or job["metadata"].get("namespace") or cluster.namespace)

    def _preflight(self, cluster: Cluster, namespace: str) -> None:
        """One cheap request: the API server answers and lets this service see Jobs there."""
        try:
            k8s.BatchV1Api(cluster.api).list_namespaced_job(namespace, limit=1, _request_timeout=15)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise InvalidParameterValue(
                    f"{cluster.description} may not use Jobs in namespace {namespace!r} "
                    f"(HTTP {exc.status}: {api_error_message(exc)[:300]}); grant the projects "
                    "service the Role described in docs/kubernetes.md"
                ) from None
            raise InvalidParameterValue(
                f"the Kubernetes API server of {cluster.description} refused to list Jobs in "
                f"namespace {namespace!r}: HTTP {exc.status}: {api_error_message(exc)[:300]}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InvalidParameterValue(
                f"cannot reach the Kubernetes API server of {cluster.description}: "
                f"{type(exc).__name__}"
            ) from None

    def submit(self, request: RunRequest) -> KubernetesSubmittedRun:
        config = self._config(request)
        template = parse_template(config.job_template)
        assert isinstance(request.project.env, DockerEnv)
        docker_env = request.project.env
        tracking_uri = self._tracking_uri(request)
        notes: list[str] = []
        environment = docker_env_variables(docker_env, notes)
        cluster = connect(config.context, self.service_account_dir)
        try:
            namespace = self._namespace(config, template, cluster)
            self._preflight(cluster, namespace)
        except BaseException:
            cluster.close()
            raise
        output = LogBuffer(self.host.log_budget)
        for note in notes:
            output.system(f"[mlgrid] {note}")

        def launch(run: KubernetesSubmittedRun) -> JobHandle:
            try:
                image = self.publish(request, config.repository_uri, output)
            finally:
                if not self.host.keep_workdirs:
                    shutil.rmtree(request.workdir, ignore_errors=True)
            variables, credentials = split_credentials(
                run_variables(dataclasses.replace(request, tracking_uri=tracking_uri))
            )
            job = render_job(
                template,
                JobRequest(
                    project_name=request.project.name,
                    run_id=request.run_id,
                    experiment_id=request.experiment_id,
                    image=image,
                    command=_command(request),
                    tracking_uri=tracking_uri,
                    environment=environment,
                    volumes=docker_env.volumes,
                    image_pull_secrets=config.image_pull_secrets,
                    store_uri=request.store_uri,
                    variables=variables,
                    credentials=tuple(credentials),
                    now=datetime.now(timezone.utc),
                ),
            )
            handle = JobHandle(
                context=cluster.context,
                namespace=namespace,
                job_name=job["metadata"]["name"],
                container=job["spec"]["template"]["spec"]["containers"][0]["name"],
                store_uri=request.store_uri,
                secret=secret_name(job["metadata"]["name"]) if credentials else None,
            )
            if run.cancelled:
                raise InvalidParameterValue("cancelled before the Job was created")
            if handle.secret:
                _create(
                    "the run's Secret",
                    lambda: create_secret(
                        cluster,
                        namespace,
                        secret_body(handle.job_name, request.run_id, credentials),
                    ),
                    cluster,
                )
            output.system(f"[mlgrid] creating Job {handle.job_name} in namespace {namespace}\n")
            body = k8s.V1Job.from_dict(job)
            assert body is not None
            try:
                created = _create(
                    "the Job",
                    lambda: k8s.BatchV1Api(cluster.api).create_namespaced_job(
                        namespace, body, _request_timeout=30
                    ),
                    cluster,
                )
            except BaseException:
                if handle.secret:  # no Job: its Secret (the token) must not stay behind
                    delete_secret(cluster, namespace, handle.secret)
                raise
            if handle.secret:
                problem = own_secret(cluster, namespace, handle.secret, created)
                if problem:
                    output.system(
                        f"[mlgrid] could not make the Job the owner of its Secret ({problem}); "
                        "it is deleted when the run ends\n"
                    )
            return handle

        return KubernetesSubmittedRun(
            request.run_id,
            cluster,
            self._hooks(),
            output,
            launch=launch,
            store_uri=request.store_uri,
        ).start()

    # -- the service's side -----------------------------------------------------------------------

    def _hooks(self) -> RunHooks:
        host = self.host
        save = host.save_artifact or (lambda run_id, store, path, data: None)
        return RunHooks(
            end_run=host.end_run,
            record=lambda run_id, handle: host.record(
                OwnedHandle(run_id, "kubernetes", handle.details())
            ),
            forget=host.forget,
            save_artifact=save,
        )

    def recover(self, handle: OwnedHandle) -> KubernetesSubmittedRun | None:
        """Adopts the Job of a run a previous service instance started.

        The Job is watched again from its current state: one that ended meanwhile ends the
        run at once (its pods' output saved, if they are still there); one that is gone fails it.
        """
        if not handle.details.get("job_name"):
            return None
        job = JobHandle.from_details(handle.details)
        try:
            cluster = connect(job.context, self.service_account_dir)
        except InvalidParameterValue:
            return None
        output = LogBuffer(self.host.log_budget)
        output.system(f"[mlgrid] adopted Job {job.job_name} after a restart of the service\n")
        return KubernetesSubmittedRun(
            handle.run_id, cluster, self._hooks(), output, handle=job
        ).start()


def _create(what: str, call: Callable[[], Any], cluster: Cluster) -> Any:
    """``call()`` (a create request); the API server's refusal or silence as a clear error."""
    try:
        return call()
    except ApiException as exc:
        raise InvalidParameterValue(
            f"the Kubernetes API server refused {what}: {api_error_message(exc)}"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise InvalidParameterValue(
            f"cannot reach the Kubernetes API server of {cluster.description} to create "
            f"{what}: {type(exc).__name__}"
        ) from None


def _command(request: RunRequest) -> str:
    from mlgrid.projects.params import build_command

    return build_command(request.entry, request.params.declared, request.params.extra)
