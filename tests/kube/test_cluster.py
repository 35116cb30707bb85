"""Which cluster a run goes to: the named context, the current one, else the pod's account."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.projects.kubernetes.cluster import connect


def kubeconfig(path: Path, current: str | None = "dev") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "a", "cluster": {"server": "http://127.0.0.1:7001"}},
            {"name": "b", "cluster": {"server": "http://127.0.0.1:7002"}},
        ],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "a", "user": "u", "namespace": "team"}},
            {"name": "prod", "context": {"cluster": "b", "user": "u"}},
        ],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_named_context_is_used_with_its_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config")))
    before = (tmp_path / "config").read_text()
    cluster = connect("prod")
    assert cluster.api.configuration.host == "http://127.0.0.1:7002"
    assert (cluster.namespace, cluster.context) == ("default", "prod")
    current = connect(None)
    assert current.api.configuration.host == "http://127.0.0.1:7001"
    assert (current.namespace, current.context) == ("team", "dev")
    assert (tmp_path / "config").read_text() == before  # read, never written


def test_an_unknown_context_is_refused_listing_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config")))
    with pytest.raises(InvalidParameterValue) as caught:
        connect("staging")
    assert "'kube-context' 'staging'" in caught.value.message
    assert "contexts: dev, prod" in caught.value.message


def test_without_a_kubeconfig_the_pods_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (account / "namespace").write_text("ml\n")
    cluster = connect(None, service_account_dir=account)
    assert cluster.api.configuration.host == "https://10.0.0.1:443"
    assert cluster.namespace == "ml" and cluster.context is None
    assert cluster.description == "the in-cluster service account"


def test_neither_kubeconfig_nor_cluster_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InvalidParameterValue) as caught:
        connect(None, service_account_dir=tmp_path)
    assert "found no kubeconfig context" in caught.value.message
    assert "'kube-context'" in caught.value.message
