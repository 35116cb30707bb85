"""The chart as a cluster admin installs it: refusals before anything is created, every object
valid for the Kubernetes API (the ``kubernetes`` client's models), every pod within the
"restricted" Pod Security Standard, secrets only in Secrets, ways in (Ingress with TLS) and
disruption budgets. Rendered by Helm's own code for the defaults and a production-shaped file."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes.client import ApiClient

from .cli_args import ROOT
from .test_chart import by_kind, container, render

PRODUCTION = yaml.safe_load(
    (ROOT / "deploy" / "helm" / "values-production.example.yaml").read_text()
)
POD_OWNERS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}
#: Volume types the restricted profile allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def _renders() -> dict[str, list[dict[str, Any]]]:
    return {"defaults": render(), "production": render(PRODUCTION, required=False)}


RENDERS = _renders()


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, r"set image\.repository to where you pushed"),
        ({"image": {"repository": "r/mlgrid"}}, r"postgresql\.password is the chart's default"),
        (
            {"image": {"repository": "r/mlgrid"}, "postgresql": {"password": "Xy7-long"}},
            r"minio\.rootPassword is the chart's default",
        ),
        (
            {"image": {"repository": "r/mlgrid"}, "allowDefaultPasswords": True,
             "ingress": {"http": {"enabled": True}}, "gateway": {"rest": {"enabled": False}}},
            r"ingress\.http routes to MLflow's REST API",
        ),
        (
            {"image": {"repository": "r/mlgrid"}, "allowDefaultPasswords": True,
             "auth": {"secret": "too-short"}},
            r"auth\.secret must be at least 16 characters",
        ),
        (
            {"image": {"repository": "r/mlgrid"}, "allowDefaultPasswords": True,
             "auth": {"adminPassword": "admin"}},
            r"auth\.adminPassword must be at least 12 characters",
        ),
        (
            {"image": {"repository": "r/mlgrid"}, "allowDefaultPasswords": True,
             "auth": {"oidc": {"issuer": "https://sso.example.com/realms/ml"}}},
            r"auth\.oidc\.issuer needs auth\.oidc\.audience",
        ),
        (
            {"image": {"repository": "r/mlgrid"}, "allowDefaultPasswords": True,
             "auth": {"enabled": False, "oidc": {"issuer": "https://sso.example.com"}}},
            r"auth\.oidc is set but auth\.enabled=false",
        ),
    ],
)  # fmt: skip
def test_the_chart_refuses_to_install_what_would_not_work(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values, required=False)


def test_real_passwords_need_no_override() -> None:
    docs = render(
        {"image": {"repository": "r/mlgrid"}, "postgresql": {"password": "Xy7-long"},
         "minio": {"rootPassword": "Zq9-longer"}},
        required=False,
    )  # fmt: skip
    assert by_kind(docs, "Deployment")


# --- every object as the API server would read it -------------------------------------------------


def _model_name(doc: dict[str, Any]) -> str:
    version = doc["apiVersion"].rsplit("/", 1)[-1]
    return f"{version.capitalize()}{doc['kind']}"


def _dropped(original: Any, round_trip: Any, path: str = "") -> list[str]:
    """Fields of ``original`` that the model did not keep (unknown or misplaced)."""
    if isinstance(original, dict):
        if not isinstance(round_trip, dict):
            return [path or "/"]
        lost = []
        for key, value in original.items():
            if key not in round_trip:
                lost.append(f"{path}.{key}")
            else:
                lost += _dropped(value, round_trip[key], f"{path}.{key}")
        return lost
    if isinstance(original, list):
        if not isinstance(round_trip, list) or len(round_trip) != len(original):
            return [path]
        return [
            m
            for a, b in zip(original, round_trip, strict=True)
            for m in _dropped(a, b, f"{path}[]")
        ]
    return [] if original == round_trip or str(original) == str(round_trip) else [path]


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_every_object_is_a_valid_kubernetes_object(which: str) -> None:
    api = ApiClient()
    docs = RENDERS[which]
    assert docs
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        # The client's models check required fields and types as they are built.
        model = api._ApiClient__deserialize(doc, _model_name(doc))  # type: ignore[attr-defined]
        again = api.sanitize_for_serialization(model)
        assert not _dropped(doc, again), f"{which}: {name}: fields the API does not know"


# --- the restricted Pod Security Standard ---------------------------------------------------------


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc["spec"]["template"]["spec"]
        for doc in docs
        if doc["kind"] in POD_OWNERS
    }


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the "restricted" Pod Security Standard (v1.30) refuses in a pod spec."""
    problems = []
    pod_sc = pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(host)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    for ctr in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = ctr.get("securityContext") or {}
        who = ctr["name"]
        if sc.get("privileged"):
            problems.append(f"{who}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{who}: allowPrivilegeEscalation not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{who}: capabilities not dropped (ALL)")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{who}: adds {caps['add']}")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{who}: runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{who}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{who}: seccompProfile {seccomp}")
        if any(p.get("hostPort") for p in ctr.get("ports", [])):
            problems.append(f"{who}: hostPort")
    return problems


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_every_pod_meets_the_restricted_pod_security_standard(which: str) -> None:
    pods = _pods(RENDERS[which])
    assert len(pods) >= 5
    for name, pod in pods.items():
        assert not restricted_violations(pod), (which, name, restricted_violations(pod))


def test_the_checker_refuses_what_the_old_chart_did() -> None:
    """The checker itself: a pod like the chart's first one (fixed UID, no seccomp, an init
    container without securityContext) is refused, point by point."""
    old = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "initContainers": [{"name": "migrate"}],
        "containers": [{"name": "svc", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "x", "hostPath": {"path": "/"}}],
    }  # fmt: skip
    problems = restricted_violations(old)
    assert "migrate: allowPrivilegeEscalation not false" in problems
    assert "svc: seccompProfile None" in problems
    assert any(p.startswith("volume x") for p in problems)


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_every_container_has_resources_and_no_fixed_mlgrid_user(which: str) -> None:
    for name, pod in _pods(RENDERS[which]).items():
        for ctr in [*pod.get("initContainers", []), *pod["containers"]]:
            resources = ctr.get("resources") or {}
            assert resources.get("requests", {}).get("memory"), (name, ctr["name"])
            assert resources.get("limits", {}).get("memory"), (name, ctr["name"])
        if "mlgrid" in str(pod["containers"][0]["image"]):
            # The image's own user, or whatever id the platform assigns (OpenShift).
            assert "runAsUser" not in (pod.get("securityContext") or {}), name
            assert all(
                "runAsUser" not in (c.get("securityContext") or {}) for c in pod["containers"]
            )


def test_openshift_values_leave_every_id_to_the_platform() -> None:
    docs = render({
        "podSecurityContext": {"fsGroup": None},
        "postgresql": {"securityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}},
        "minio": {"securityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}},
    })  # fmt: skip
    for name, pod in _pods(docs).items():
        text = yaml.safe_dump(pod)
        assert "runAsUser" not in text and "fsGroup" not in text, name
        assert not restricted_violations(pod), name


# --- secrets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_secrets_stay_in_secrets(which: str) -> None:
    docs = RENDERS[which]
    if which == "defaults":  # passwords that no other string contains by chance
        docs = render({"postgresql": {"password": "pg-Pw-1"}, "minio": {"rootPassword": "mn-Pw-2"}})
    secrets = [
        value
        for doc in by_kind(docs, "Secret").values()
        for key, value in (doc.get("stringData") or {}).items()
        if "PASSWORD" in key or "SECRET" in key or key.endswith("store-uri")
    ]
    for name, pod in _pods(docs).items():
        for ctr in [*pod.get("initContainers", []), *pod["containers"]]:
            shown = " ".join(
                [*ctr.get("args", []), *ctr.get("command", []),
                 *(str(e.get("value", "")) for e in ctr.get("env", []))]
            )  # fmt: skip
            for secret in secrets:
                assert secret not in shown, (name, ctr["name"])
    for pod in _pods(docs).values():
        for ctr in pod["containers"]:
            for env in ctr.get("env", []):
                if env["name"] in {"MLGRID_BACKEND_STORE_URI", "AWS_SECRET_ACCESS_KEY"}:
                    assert "value" not in env and env["valueFrom"]["secretKeyRef"]


# --- ways in and disruptions ----------------------------------------------------------------------


def test_ingresses_reach_the_gateway_over_grpc_and_http_with_tls() -> None:
    docs = RENDERS["production"]
    ingresses = by_kind(docs, "Ingress")
    gateway = by_kind(docs, "Service")["demo-mlgrid-gateway"]
    ports = {p["name"] for p in gateway["spec"]["ports"]}
    assert set(ingresses) == {"demo-mlgrid-grpc", "demo-mlgrid-http"}
    for kind, ingress in (("grpc", ingresses["demo-mlgrid-grpc"]),
                          ("http", ingresses["demo-mlgrid-http"])):  # fmt: skip
        (rule,) = ingress["spec"]["rules"]
        (path,) = rule["http"]["paths"]
        backend = path["backend"]["service"]
        assert backend["name"] == "demo-mlgrid-gateway" and backend["port"]["name"] == kind
        assert backend["port"]["name"] in ports
        assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
        assert ingress["spec"]["ingressClassName"] == "nginx"
    grpc_annotations = ingresses["demo-mlgrid-grpc"]["metadata"]["annotations"]
    assert grpc_annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert not by_kind(RENDERS["defaults"], "Ingress")  # off unless asked for
    # The gateway serves the REST port the http Ingress names.
    args = container(by_kind(docs, "Deployment")["demo-mlgrid-gateway"])["args"]
    assert "--rest-port=5000" in args
    assert "--rest-artifacts-root=s3://example-ml-artifacts/mlgrid" in args


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_each_deployment_has_a_disruption_budget_that_selects_its_pods(which: str) -> None:
    docs = RENDERS[which]
    budgets = by_kind(docs, "PodDisruptionBudget")
    deployments = by_kind(docs, "Deployment")
    assert set(budgets) == set(deployments)
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        # maxUnavailable (not minAvailable) so that a single replica can still be drained.
        assert budgets[name]["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


def test_production_values_pin_the_image_and_use_external_stores() -> None:
    docs = RENDERS["production"]
    assert not by_kind(docs, "StatefulSet")
    for name, pod in _pods(docs).items():
        for ctr in [*pod.get("initContainers", []), *pod["containers"]]:
            assert ctr["image"] == ("registry.example.com/ml/mlgrid@sha256:" + "0" * 64), name
        assert pod["imagePullSecrets"] == [{"name": "registry-pull"}]
    replicas = {n: d["spec"]["replicas"] for n, d in by_kind(docs, "Deployment").items()}
    assert replicas["demo-mlgrid-tracking"] == 3 and replicas["demo-mlgrid-projects"] == 1
    (claim,) = by_kind(docs, "PersistentVolumeClaim").values()
    assert claim["spec"]["storageClassName"] == "standard"


def test_example_values_file_is_where_the_docs_say() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "deploy/helm/values-production.example.yaml" in docs
