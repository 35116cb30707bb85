"""The Helm chart, linted and rendered by Helm's own Go code (helm-python-sdk; no cluster).

Rendered Deployments are checked against the real ``mlgrid`` CLI (their args are parsed by its
click commands), the gateway's routes ConfigMap against the gateway's config parser, and the
Services, probes and RBAC against what the Deployments need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from mlgrid_services.gateway.config import load_config

from .cli_args import ROOT, known_env_names, parse

CHART = ROOT / "deploy" / "helm" / "mlgrid"
COMPONENTS = ("gateway", "tracking", "artifacts", "registry", "projects")
ROUTES_PATH = "/etc/mlgrid/routes.yaml"


#: What every install must say (the chart refuses to guess an image or accept its default
#: passwords silently); the tests add it to the values they render.
REQUIRED = {"image": {"repository": "registry.example/ml/mlgrid"}, "allowDefaultPasswords": True}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, nested dicts merged as Helm merges values files."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def render(values: dict[str, Any] | None = None, *, required: bool = True) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    given = merged(REQUIRED, values or {}) if required else values
    manifests = chart.render(given, name="demo", namespace="ml", is_install=True)
    docs = []
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    first: dict[str, Any] = containers[0]
    return first


def routes_file(docs: list[dict[str, Any]], tmp_path: Path) -> Path:
    config_map = by_kind(docs, "ConfigMap")["demo-mlgrid-gateway-routes"]
    local = tmp_path / "routes.yaml"
    local.write_text(config_map["data"]["routes.yaml"])
    return local


def test_chart_lints_clean() -> None:
    report = helm.lint(CHART, strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_each_component_has_a_deployment_and_a_matching_service() -> None:
    docs = render()
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert set(deployments) == {f"demo-mlgrid-{c}" for c in COMPONENTS}
    for component in COMPONENTS:
        deployment = deployments[f"demo-mlgrid-{component}"]
        service = services[f"demo-mlgrid-{component}"]
        # Backends are headless (the gateway reaches every pod); the gateway is one address.
        assert (service["spec"].get("clusterIP") == "None") == (component != "gateway")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert service["spec"]["selector"].items() <= pod_labels.items()
        ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
        exposed = {p["targetPort"]: p["port"] for p in service["spec"]["ports"]}
        # Every process serves gRPC; the gateway also its tunnel port (tracking/registry
        # clients connect there to reach their backend in one gRPC hop).
        assert ports == exposed
        assert set(ports) == ({"grpc", "tunnel", "http"} if component == "gateway" else {"grpc"})


def test_the_gateway_tunnel_port_matches_its_argument_and_can_be_turned_off(
    tmp_path: Path,
) -> None:
    files = {ROUTES_PATH: routes_file(render(), tmp_path)}
    gateway = container(by_kind(render(), "Deployment")["demo-mlgrid-gateway"])
    _, params = parse(gateway["args"], files)
    tunnel = next(p for p in gateway["ports"] if p["name"] == "tunnel")
    assert params["tunnel_port"] == tunnel["containerPort"] == 50050
    assert params["no_tunnel"] is False

    off = render({"gateway": {"tunnel": {"enabled": False}}})
    gateway = container(by_kind(off, "Deployment")["demo-mlgrid-gateway"])
    _, params = parse(gateway["args"], files)
    assert params["no_tunnel"] is True
    assert [p["name"] for p in gateway["ports"]] == ["grpc", "http"]
    service = by_kind(off, "Service")["demo-mlgrid-gateway"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["grpc", "http"]


def test_deployment_args_are_valid_mlgrid_commands(tmp_path: Path) -> None:
    docs = render()
    files = {ROUTES_PATH: routes_file(docs, tmp_path)}
    services = by_kind(docs, "Service")
    known_env = known_env_names()
    for component in COMPONENTS:
        deployment = by_kind(docs, "Deployment")[f"demo-mlgrid-{component}"]
        main = container(deployment)
        command, params = parse(main["args"], files)
        assert (command, params["name"]) == ("server", component)
        assert params["port"] == main["ports"][0]["containerPort"]
        assert params["host"] == "0.0.0.0"
        if component != "gateway":
            host, port = params["gateway_target"].split(":")
            assert services[host]["spec"]["ports"][0]["port"] == int(port) == 50051
        for pod_container in [
            main,
            *deployment["spec"]["template"]["spec"].get("initContainers", []),
        ]:
            for env in pod_container.get("env", []):
                if env["name"].startswith("MLGRID_"):
                    assert env["name"] in known_env, f"{component}: unknown {env['name']}"
        # Kubernetes asks the process's gRPC health service directly.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert main[probe]["grpc"]["port"] == params["port"], (component, probe)
        assert main["resources"]["requests"]["memory"]
    tracking = by_kind(docs, "Deployment")["demo-mlgrid-tracking"]
    (migrate,) = tracking["spec"]["template"]["spec"]["initContainers"]
    assert parse(migrate["args"])[0] == "db upgrade"
    assert parse(container(tracking)["args"])[1]["default_artifact_root"] == "s3://mlgrid/artifacts"


def test_gateway_routes_config_map_discovers_every_service(tmp_path: Path) -> None:
    docs = render({"gateway": {"extraRoutes": [
        {"service": "artifacts", "scheme": "file-plugin", "address": "plugin:7000"}]}})  # fmt: skip
    routes = load_config(routes_file(docs, tmp_path))  # the gateway's own parser
    services = by_kind(docs, "Service")
    expected = {
        f"{name}:{services[name]['spec']['ports'][0]['port']}"
        for name in services
        if not name.endswith(("gateway", "postgresql", "minio"))
    }
    assert set(routes.discover) == expected and len(expected) == 4
    assert [(r.service, r.scheme, r.address) for r in routes.backends] == [
        ("artifacts", "file-plugin", "plugin:7000")
    ]
    gateway = by_kind(docs, "Deployment")["demo-mlgrid-gateway"]["spec"]["template"]["spec"]
    assert gateway["volumes"][0]["configMap"]["name"] == "demo-mlgrid-gateway-routes"


def test_projects_service_account_may_manage_jobs() -> None:
    docs = render()
    projects = by_kind(docs, "Deployment")["demo-mlgrid-projects"]["spec"]["template"]["spec"]
    account = projects["serviceAccountName"]
    assert account in by_kind(docs, "ServiceAccount")
    (binding,) = by_kind(docs, "RoleBinding").values()
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "ml"}]
    role = by_kind(docs, "Role")[binding["roleRef"]["name"]]
    job_rules = [r for r in role["rules"] if "batch" in r["apiGroups"] and "jobs" in r["resources"]]
    verbs = {verb for rule in job_rules for verb in rule["verbs"]}
    assert {"create", "get", "watch", "delete"} <= verbs
    pod_log = [r for r in role["rules"] if "pods/log" in r["resources"]]
    assert pod_log and "get" in pod_log[0]["verbs"]
    # Only the projects service gets that account.
    for name, deployment in by_kind(docs, "Deployment").items():
        if not name.endswith("projects"):
            assert "serviceAccountName" not in deployment["spec"]["template"]["spec"]


def test_bundled_postgres_and_minio_wire_the_services() -> None:
    docs = render()
    assert set(by_kind(docs, "StatefulSet")) == {"demo-mlgrid-postgresql", "demo-mlgrid-minio"}
    store = by_kind(docs, "Secret")["demo-mlgrid-store"]["stringData"]["backend-store-uri"]
    assert store == "postgresql://mlgrid:mlgrid@demo-mlgrid-postgresql:5432/mlgrid"
    # Any password works: it is URL-encoded into the URI (and read back intact).
    password = "p@ss:w/rd?#% +x"
    docs = render({"postgresql": {"password": password}})
    store = by_kind(docs, "Secret")["demo-mlgrid-store"]["stringData"]["backend-store-uri"]
    from sqlalchemy.engine import make_url

    assert make_url(store).password == password
    assert make_url(store).host == "demo-mlgrid-postgresql"
    artifacts = container(by_kind(docs, "Deployment")["demo-mlgrid-artifacts"])
    env = {e["name"]: e for e in artifacts["env"]}
    assert env["MLGRID_S3_ENDPOINT_URL"]["value"] == "http://demo-mlgrid-minio:9000"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "demo-mlgrid-s3"
    bucket_job = by_kind(docs, "Job")["demo-mlgrid-minio-bucket"]
    assert (
        "mc mb --ignore-existing"
        in bucket_job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    )


def test_external_database_and_object_store_from_secrets() -> None:
    docs = render({
        "postgresql": {"enabled": False},
        "minio": {"enabled": False},
        "store": {"existingSecret": "prod-db"},
        "s3": {"existingSecret": "prod-s3"},
        "auth": {"existingSecret": "prod-auth"},
        "defaultArtifactRoot": "s3://ml-artifacts/mlgrid",
    })  # fmt: skip
    assert not by_kind(docs, "StatefulSet")
    assert not by_kind(docs, "Secret")  # everything comes from the existing secrets
    tracking = container(by_kind(docs, "Deployment")["demo-mlgrid-tracking"])
    env = {e["name"]: e for e in tracking["env"]}
    assert env["MLGRID_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "prod-db"
    assert parse(tracking["args"])[1]["default_artifact_root"] == "s3://ml-artifacts/mlgrid"
    artifacts = {
        e["name"]: e for e in container(by_kind(docs, "Deployment")["demo-mlgrid-artifacts"])["env"]
    }
    assert "MLGRID_S3_ENDPOINT_URL" not in artifacts  # plain AWS S3
    assert artifacts["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "prod-s3"


def test_missing_store_is_a_clear_render_error() -> None:
    with pytest.raises(helm.HelmError, match=r"set store.uri or store.existingSecret"):
        render({"postgresql": {"enabled": False}})


def test_disabled_services_leave_no_trace() -> None:
    docs = render({"projects": {"enabled": False}, "registry": {"enabled": False}})
    names = {doc["metadata"]["name"] for doc in docs}
    assert not {n for n in names if n.endswith(("-projects", "-registry"))}
    assert not by_kind(docs, "Role") and not by_kind(docs, "ServiceAccount")
    config_map = by_kind(docs, "ConfigMap")["demo-mlgrid-gateway-routes"]
    discover = yaml.safe_load(config_map["data"]["routes.yaml"])["discover"]
    assert discover == ["demo-mlgrid-tracking:50052", "demo-mlgrid-artifacts:50053"]


def _kubernetes_files(docs: list[dict[str, Any]], root: Path) -> Path:
    """The projects service's kubernetes ConfigMap as files below ``root`` (as mounted)."""
    deployment = by_kind(docs, "Deployment")["demo-mlgrid-projects"]["spec"]["template"]["spec"]
    (mount,) = [m for m in container({"spec": {"template": {"spec": deployment}}})["volumeMounts"]
                if m["name"] == "kubernetes"]  # fmt: skip
    (volume,) = [v for v in deployment["volumes"] if v["name"] == "kubernetes"]
    config_map = by_kind(docs, "ConfigMap")[volume["configMap"]["name"]]
    directory = root / mount["mountPath"].lstrip("/")
    directory.mkdir(parents=True)
    for name, text in config_map["data"].items():
        (directory / name).write_text(text.replace(mount["mountPath"], str(directory)))
    return directory


def test_projects_service_runs_projects_as_jobs_with_in_cluster_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgrid_services.projects.kubernetes.config import DEFAULTS_ENV, parse_config
    from mlgrid_services.projects.kubernetes.template import parse_template

    docs = render({"projects": {"kubernetes": {
        "repositoryUri": "registry.example/ml/projects", "imagePullSecrets": ["pull-creds"]}}})  # fmt: skip
    projects = container(by_kind(docs, "Deployment")["demo-mlgrid-projects"])
    env = {e["name"]: e.get("value") for e in projects["env"]}
    directory = _kubernetes_files(docs, tmp_path)
    assert env[DEFAULTS_ENV] == f"/{directory.relative_to(tmp_path)}/backend-config.json"
    # The service reads these defaults with the backend's own parser: no kube context (the
    # pod's service account), the chart's template, the release's namespace.
    monkeypatch.setenv(DEFAULTS_ENV, str(directory / "backend-config.json"))
    config = parse_config({})
    assert config.context is None
    assert config.repository_uri == "registry.example/ml/projects"
    assert config.namespace == "ml"
    assert config.image_pull_secrets == ("pull-creds",)
    job = parse_template(config.job_template)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The Jobs' pods drop what a project never needs (Pod Security "baseline" and more).
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "DOCKER_HOST" not in env and "DOCKER_CONFIG" not in env


def test_projects_role_covers_every_call_of_the_kubernetes_backend_in_the_jobs_namespace() -> None:
    docs = render({"projects": {"kubernetes": {"namespace": "ml-jobs"}}})
    role = by_kind(docs, "Role")["demo-mlgrid-projects"]
    binding = by_kind(docs, "RoleBinding")["demo-mlgrid-projects"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "ml-jobs"
    assert binding["subjects"][0]["namespace"] == "ml"  # the service account stays home
    allowed = {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # create, list+watch, delete the Job; list+watch and delete its pods; follow their logs;
    # create the run's Secret (its token), make it the Job's, delete it. Never read Secrets.
    needed = {
        ("jobs", "create"), ("jobs", "list"), ("jobs", "watch"), ("jobs", "delete"),
        ("pods", "list"), ("pods", "watch"), ("pods", "delete"), ("pods/log", "get"),
        ("secrets", "create"), ("secrets", "patch"), ("secrets", "delete"),
    }  # fmt: skip
    assert needed <= allowed
    assert not {("secrets", "get"), ("secrets", "list"), ("secrets", "watch")} & allowed
    config_map = by_kind(docs, "ConfigMap")["demo-mlgrid-projects-kubernetes"]
    assert '"kube-namespace": "ml-jobs"' in config_map["data"]["backend-config.json"]


def test_projects_image_builder_and_registry_credentials_are_wired() -> None:
    docs = render({"projects": {"kubernetes": {
        "dockerHost": "tcp://image-builder:2375", "pushSecret": "registry-push",
        "trackingUri": "grpc://mlgrid.example:443"}}})  # fmt: skip
    deployment = by_kind(docs, "Deployment")["demo-mlgrid-projects"]
    spec = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
    assert env["DOCKER_HOST"] == "tcp://image-builder:2375"
    assert env["KUBE_MLFLOW_TRACKING_URI"] == "grpc://mlgrid.example:443"
    (secret,) = [v["secret"] for v in spec["volumes"] if "secret" in v]
    assert secret == {
        "secretName": "registry-push",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    (mount,) = [m for m in container(deployment)["volumeMounts"] if m["name"] == "docker-config"]
    assert env["DOCKER_CONFIG"] == mount["mountPath"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/kubernetes" in annotations  # a changed template restarts the service


def test_the_kubernetes_backend_can_be_left_out() -> None:
    docs = render({"projects": {"kubernetes": {"enabled": False}}})
    assert "demo-mlgrid-projects-kubernetes" not in by_kind(docs, "ConfigMap")
    env = {e["name"] for e in container(by_kind(docs, "Deployment")["demo-mlgrid-projects"])["env"]}
    assert "MLGRID_KUBE_BACKEND_CONFIG" not in env


def test_the_projects_state_directory_outlives_the_pod() -> None:
    """One projects replica keeps its state directory (working copies, environment caches) in a
    PersistentVolumeClaim, handed over to the next pod by a Recreate rollout."""

    def projects(values: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        docs = render(values)
        deployment = by_kind(docs, "Deployment")["demo-mlgrid-projects"]
        (volume,) = [
            v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "work"
        ]
        return deployment, [volume, *by_kind(docs, "PersistentVolumeClaim").values()]

    deployment, (volume, claim) = projects(None)
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "work")
    assert mount["mountPath"] == "/home/mlgrid/.mlgrid"
    _, (volume,) = projects({"projects": {"persistence": {"existingClaim": "projects-state"}}})
    assert volume["persistentVolumeClaim"] == {"claimName": "projects-state"}
    _, (volume,) = projects({"projects": {"stateClaim": "old-name"}})  # the earlier value name
    assert volume["persistentVolumeClaim"] == {"claimName": "old-name"}
    _, (volume,) = projects({"projects": {"persistence": {"enabled": False}}})
    assert volume == {"name": "work", "emptyDir": {}}


def test_projects_replicas_share_their_run_leases_in_the_tracking_database() -> None:
    """Several projects replicas: each reaches the tracking database (where the runs' leases
    live) with the lease period set, keeps its own emptyDir, and rolls out one by one."""
    docs = render({"projects": {"replicas": 3, "leaseSeconds": 20}})
    deployment = by_kind(docs, "Deployment")["demo-mlgrid-projects"]
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]  # RollingUpdate: no volume to hand over
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "work"
    ]
    assert volume == {"name": "work", "emptyDir": {}}
    assert not by_kind(docs, "PersistentVolumeClaim").get("demo-mlgrid-projects-state")
    env = {e["name"]: e for e in container(deployment)["env"]}
    store = env["MLGRID_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    assert store["key"] == "backend-store-uri"
    assert env["MLGRID_PROJECTS_LEASE_SECONDS"]["value"] == "20"
