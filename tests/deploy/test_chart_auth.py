"""Authentication in the Helm chart: on by default, its credentials only in a Secret, every
mlgrid process configured alike, and an install with auth off started open on purpose (the
processes refuse to serve open on the pod's address otherwise)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mlgrid.environment import MLGRID_ALLOW_OPEN, MLGRID_AUTH, MLGRID_AUTH_SECRET
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.common.auth.settings import AuthSettings, check_exposure

from .cli_args import ROOT
from .test_chart import CHART, by_kind, container, render

PRODUCTION = yaml.safe_load(
    (ROOT / "deploy" / "helm" / "values-production.example.yaml").read_text()
)
COMPONENTS = ("gateway", "tracking", "artifacts", "registry", "projects")
#: Variables that carry credentials: each must come from a Secret.
FROM_SECRET = {
    "MLGRID_AUTH_SECRET": "secret",
    "MLGRID_AUTH_ADMIN_USERNAME": "admin-username",
    "MLGRID_AUTH_ADMIN_PASSWORD": "admin-password",
}


def _envs(docs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Environment of each mlgrid container, by component and variable name."""
    out = {}
    for name, deployment in by_kind(docs, "Deployment").items():
        component = name.removeprefix("demo-mlgrid-").removeprefix("mlgrid-")
        out[component] = {e["name"]: e for e in container(deployment)["env"]}
    return out


def _secret_ref(entry: dict[str, Any]) -> tuple[str, str]:
    assert "value" not in entry, entry["name"]
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


@pytest.mark.parametrize(
    ("docs", "secret_name"),
    [
        pytest.param(render(), "demo-mlgrid-auth", id="defaults"),
        pytest.param(render(PRODUCTION, required=False), "mlgrid-auth", id="production"),
    ],
)
def test_every_process_has_auth_on_with_credentials_from_the_secret(
    docs: list[dict[str, Any]], secret_name: str
) -> None:
    envs = _envs(docs)
    assert set(envs) == set(COMPONENTS)
    for component, env in envs.items():
        assert env[MLGRID_AUTH.name]["value"] == "true", component
        assert MLGRID_ALLOW_OPEN.name not in env, component
        for variable, key in FROM_SECRET.items():
            assert _secret_ref(env[variable]) == (secret_name, key), (component, variable)
        # The auth store is the tracking store unless told otherwise, from its Secret too.
        store = _secret_ref(env["MLGRID_AUTH_STORE_URI"])
        assert store[1] == "backend-store-uri"
        if "MLGRID_BACKEND_STORE_URI" in env:
            assert store == _secret_ref(env["MLGRID_BACKEND_STORE_URI"])
        # Closed: nothing asks to serve open (test_chart.py parses these with the real CLI).
        args = container(by_kind(docs, "Deployment")[f"demo-mlgrid-{component}"])["args"]
        assert "--allow-open" not in args


def test_the_default_install_generates_its_secret_with_usable_values() -> None:
    secret = by_kind(render(), "Secret")["demo-mlgrid-auth"]
    data = secret["stringData"]
    assert set(data) == {"secret", "admin-username", "admin-password"}
    assert data["admin-username"] == "admin"
    assert len(data["secret"]) >= 16 and len(data["admin-password"]) >= 12
    # Random per install, never a value written in the chart.
    again = by_kind(render(), "Secret")["demo-mlgrid-auth"]["stringData"]
    assert again["secret"] != data["secret"] and again["admin-password"] != data["admin-password"]
    chart_text = "".join(p.read_text() for p in CHART.rglob("*") if p.is_file())
    assert data["secret"] not in chart_text and data["admin-password"] not in chart_text
    # Kept on uninstall: a reinstall over the same database still knows its admin.
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_given_credentials_stay_in_the_secret_and_out_of_every_pod_spec() -> None:
    given = {
        "secret": "sign-Me-with-this-0123456789",
        "adminUsername": "root-of-ml",
        "adminPassword": "Adm1n-pass-word!",
        "storeUri": "postgresql://auth:Auth-Pw-9@users-db:5432/auth",
    }
    docs = render({"auth": given})
    data = by_kind(docs, "Secret")["demo-mlgrid-auth"]["stringData"]
    assert data == {
        "secret": given["secret"],
        "admin-username": given["adminUsername"],
        "admin-password": given["adminPassword"],
        "store-uri": given["storeUri"],
    }
    for env in _envs(docs).values():
        assert _secret_ref(env["MLGRID_AUTH_STORE_URI"]) == ("demo-mlgrid-auth", "store-uri")
    pods_text = yaml.safe_dump(
        [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job", "ConfigMap"}]
    )
    for value in (given["secret"], given["adminPassword"], "Auth-Pw-9"):
        assert value not in pods_text


def test_an_existing_secret_makes_the_chart_create_none() -> None:
    docs = render({"auth": {"existingSecret": "my-auth"}})
    assert "demo-mlgrid-auth" not in by_kind(docs, "Secret")
    for env in _envs(docs).values():
        assert _secret_ref(env[MLGRID_AUTH_SECRET.name]) == ("my-auth", "secret")


def test_oidc_values_reach_every_process() -> None:
    docs = render(PRODUCTION, required=False)
    oidc = PRODUCTION["auth"]["oidc"]
    for component, env in _envs(docs).items():
        assert env["MLGRID_AUTH_OIDC_ISSUER"]["value"] == oidc["issuer"], component
        assert env["MLGRID_AUTH_OIDC_AUDIENCE"]["value"] == oidc["audience"]
        assert env["MLGRID_AUTH_OIDC_JWKS_URL"]["value"] == oidc["jwksUrl"]
        assert env["MLGRID_AUTH_OIDC_USERNAME_CLAIM"]["value"] == "preferred_username"
        assert env["MLGRID_AUTH_DEFAULT_PERMISSION"]["value"] == "NO_PERMISSIONS"
    assert "MLGRID_AUTH_OIDC_ISSUER" not in _envs(render())["gateway"]


def test_auth_off_renders_no_auth_and_serves_open_on_purpose() -> None:
    docs = render({"auth": {"enabled": False}})
    assert "demo-mlgrid-auth" not in by_kind(docs, "Secret")
    for component, env in _envs(docs).items():
        assert not [n for n in env if n.startswith("MLGRID_AUTH")], component
        assert env[MLGRID_ALLOW_OPEN.name]["value"] == "true"


def test_notes_tell_how_to_read_the_admin_password() -> None:
    import helm_python as helm

    from .test_chart import REQUIRED

    notes = helm.Chart.load(CHART).render(REQUIRED, name="demo", namespace="ml", is_install=True)
    text = next(t for p, t in notes.items() if p.endswith("NOTES.txt"))
    assert "get secret demo-mlgrid-auth -o jsonpath='{.data.admin-password}'" in text
    assert "AUTHENTICATION IS OFF" not in text
    off = helm.Chart.load(CHART).render(
        {**REQUIRED, "auth": {"enabled": False}}, name="demo", namespace="ml", is_install=True
    )
    assert "AUTHENTICATION IS OFF" in next(t for p, t in off.items() if p.endswith("NOTES.txt"))


def _resolved(docs: list[dict[str, Any]], component: str) -> dict[str, str]:
    """The environment a component's container would see, Secret references resolved from the
    Secrets the chart rendered."""
    secrets = {n: d.get("stringData", {}) for n, d in by_kind(docs, "Secret").items()}
    out = {}
    for name, entry in _envs(docs)[component].items():
        if "value" in entry:
            out[name] = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["key"] in secrets.get(ref["name"], {}):
                out[name] = secrets[ref["name"]][ref["key"]]
    return out


@pytest.mark.parametrize("auth", [True, False], ids=["auth-on", "auth-off"])
def test_each_process_would_start_on_the_pod_address(
    auth: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services' own checks, given the rendered environment: auth settings complete, and
    binding 0.0.0.0 allowed (closed by auth, or open on purpose)."""
    docs = render({"auth": {"enabled": auth}})
    for component in COMPONENTS:
        for name in [MLGRID_ALLOW_OPEN.name, *(v for v in _resolved(docs, component))]:
            monkeypatch.delenv(name, raising=False)
        for name, value in _resolved(docs, component).items():
            monkeypatch.setenv(name, value)
        settings = AuthSettings.from_env()
        assert settings.enabled is auth and MLGRID_AUTH.get() is auth
        settings.check()
        check_exposure(component, "0.0.0.0", settings, MLGRID_ALLOW_OPEN.get())
        if not auth:  # what the chart's MLGRID_ALLOW_OPEN is there for
            with pytest.raises(InvalidParameterValue, match="without authentication"):
                check_exposure(component, "0.0.0.0", settings, allow_open=False)
