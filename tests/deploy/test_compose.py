"""deploy/compose.yaml, the Dockerfile and its build context, checked on disk (no Docker here).

Every mlgrid container's command is parsed by the real ``mlgrid`` CLI, the gateway's routes file
by the gateway's own config parser, and the health-check script runs against a real server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgrid_services.common.server import start_server
from mlgrid_services.gateway.config import load_config

from .cli_args import ROOT, known_env_names, parse

DEPLOY = ROOT / "deploy"
MLGRID_SERVICES = ("gateway", "tracking", "artifacts", "registry", "projects")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _mlgrid_containers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith("mlgrid:")
    }


def _routes_file(compose: dict[str, Any]) -> dict[str, Path]:
    """Container path -> local file, for the files compose mounts into the gateway."""
    mounts = {}
    for volume in compose["services"]["gateway"].get("volumes", []):
        local, target, mode = volume.split(":")
        assert local.startswith("./") and mode == "ro", volume  # a file of deploy/, read-only
        mounts[target] = DEPLOY / local
    return mounts


def test_compose_has_the_stack_and_its_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "migrate", *MLGRID_SERVICES} <= set(services)
    assert set(_mlgrid_containers(compose)) == {"migrate", *MLGRID_SERVICES}
    # The one published service is the gateway, on loopback unless MLGRID_BIND says otherwise.
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway": ["${MLGRID_BIND:-127.0.0.1}:50051:50051",
                                      "${MLGRID_BIND:-127.0.0.1}:50050:50050"]}  # fmt: skip


def test_every_other_image_is_pinned_to_an_exact_release(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name in _mlgrid_containers(compose):
            continue
        image = svc["image"]
        repository, _, tag = image.rpartition(":")
        assert "@sha256:" in image or (repository and re.search(r"\d+\.\d+|RELEASE\.", tag)), (
            f"{name}: {image} is not pinned to an exact release"
        )
        assert "latest" not in tag


#: The secret files each container may read: only what it uses.
NEEDED_SECRETS = {
    "postgres": {"postgres-password"},
    "minio": {"s3-access-key", "s3-secret-key"},
    "minio-init": {"s3-access-key", "s3-secret-key"},
    "migrate": {"store-uri"},
    "tracking": {"store-uri"},
    "registry": {"store-uri"},
    "artifacts": {"s3-access-key", "s3-secret-key"},
    "projects": set(),
    "gateway": set(),
}


def test_credentials_are_files_and_each_container_gets_only_its_own(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {name: set(svc.get("secrets", [])) for name, svc in services.items()} == NEEDED_SECRETS
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            # A credential is named by a *_FILE variable, never given as a value.
            secret_named = re.search(r"(PASSWORD|SECRET_ACCESS_KEY|ACCESS_KEY_ID|STORE_URI)$", key)
            assert not secret_named, (name, key)
            assert "://" not in str(value) or "@" not in str(value), (name, key)
        for part in [*(svc.get("command") or []), *(svc.get("entrypoint") or [])]:
            assert "mlgrid-secret" not in str(part) and ":mlgrid@" not in str(part)
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")


def test_the_entrypoint_reads_each_file_variable_compose_sets(compose: dict[str, Any]) -> None:
    text = (DEPLOY / "entrypoint.sh").read_text()
    (names,) = re.findall(r"^for name in (.+); do$", text, flags=re.M)
    handled = set(names.split())
    for name, svc in _mlgrid_containers(compose).items():
        for key in svc.get("environment") or {}:
            if key.endswith("_FILE"):
                assert key.removesuffix("_FILE") in handled, (name, key)


def test_compose_secrets_script_writes_matching_credentials_once(tmp_path: Path) -> None:
    script = tmp_path / "deploy" / "compose-secrets.sh"
    script.parent.mkdir()
    shutil.copy2(DEPLOY / "compose-secrets.sh", script)
    subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    secrets = tmp_path / "deploy" / "secrets"
    first = {p.name: p.read_text() for p in secrets.iterdir()}
    assert set(first) == {"postgres-password", "store-uri", "s3-access-key", "s3-secret-key"}
    assert len(first["postgres-password"]) >= 32
    assert first["store-uri"] == (
        f"postgresql://mlgrid:{first['postgres-password']}@postgres:5432/mlgrid"
    )
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    assert {p.name: p.read_text() for p in secrets.iterdir()} == first  # kept, not replaced


def test_every_mlgrid_command_is_a_valid_cli_invocation(compose: dict[str, Any]) -> None:
    files = _routes_file(compose)
    for name, svc in _mlgrid_containers(compose).items():
        command, params = parse(list(svc["command"]), files)
        if name == "migrate":
            assert command == "db upgrade"
            continue
        assert command == "server" and params["name"] == name, name
        assert params["host"] == "0.0.0.0"
        if name != "gateway":
            assert params["gateway_target"] == "gateway:50051"
    tracking = parse(compose["services"]["tracking"]["command"])[1]
    assert tracking["default_artifact_root"] == "s3://mlgrid/artifacts"


def test_environment_names_are_ones_mlgrid_reads(compose: dict[str, Any]) -> None:
    known = known_env_names()
    for name, svc in _mlgrid_containers(compose).items():
        for key in svc.get("environment", {}):
            if key.startswith(("MLGRID_", "MLFLOW_")):
                read = key.removesuffix("_FILE")  # the entrypoint turns NAME_FILE into NAME
                assert read in known, f"{name}: {key} is not read anywhere in mlgrid"
    env = compose["services"]["tracking"]["environment"]
    assert env["MLGRID_BACKEND_STORE_URI_FILE"] == "/run/secrets/store-uri"
    assert compose["services"]["artifacts"]["environment"]["MLGRID_S3_ENDPOINT_URL"] == (
        "http://minio:9000"
    )


def test_health_checks_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in MLGRID_SERVICES:
        svc = services[name]
        port = parse(list(svc["command"]), _routes_file(compose))[1]["port"]
        assert svc["healthcheck"]["test"] == ["CMD", "mlgrid-healthcheck", f"127.0.0.1:{port}"]
        assert svc["depends_on"], f"{name} has no depends_on"
    for name in ("postgres", "minio"):
        assert services[name]["healthcheck"]["test"]
    for name, svc in services.items():
        for dependency, spec in svc.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert spec["condition"] in {
                "service_healthy",
                "service_completed_successfully",
                "service_started",
            }
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    # The gateway starts once every service is healthy; the services once the schema is there.
    assert set(services["gateway"]["depends_on"]) == {
        "tracking",
        "artifacts",
        "registry",
        "projects",
    }
    assert services["tracking"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["artifacts"]["depends_on"]["minio-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert "mc mb --ignore-existing local/mlgrid" in services["minio-init"]["command"][0]
    assert "MC_HOST_local=" in services["minio-init"]["command"][0]


def test_gateway_routes_reach_every_service_on_its_port(compose: dict[str, Any]) -> None:
    routes = load_config(DEPLOY / "gateway-routes.yaml")  # the gateway's own parser
    ports = {
        name: parse(list(compose["services"][name]["command"]))[1]["port"]
        for name in ("tracking", "artifacts", "registry", "projects")
    }
    assert sorted(routes.discover) == sorted(f"{name}:{port}" for name, port in ports.items())


# --- image ------------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; '!' re-includes."""
    ignored = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = re.escape(pattern.rstrip("/"))
        regex = regex.replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerfile_installs_the_lock_before_the_code_and_runs_mlgrid() -> None:
    steps = _dockerfile()
    # The base is a build argument (default: the official slim Python image).
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    runs = [args for instruction, args in steps if instruction == "RUN"]
    lock_install = next(i for i, (ins, args) in enumerate(steps)
                        if ins == "RUN" and "-r /opt/mlgrid-build/requirements.lock" in args)  # fmt: skip
    first_code_copy = next(i for i, (ins, args) in enumerate(steps)
                           if ins == "COPY" and args.startswith(("sdk/", "services/")))  # fmt: skip
    # Dependencies in their own layer, pinned, before the code: a code change reuses it.
    assert lock_install < first_code_copy
    assert "--no-deps" in steps[lock_install][1]
    assert any("--no-index" in args and "--no-deps" in args for args in runs)
    assert any("openssh-client" in args and "git" in args for args in runs)
    entrypoint = [args for instruction, args in steps if instruction == "ENTRYPOINT"]
    assert entrypoint == ['["mlgrid-entrypoint"]']
    (user,) = [args for instruction, args in steps if instruction == "USER"]
    assert user.isdigit() and user != "0"  # numeric: runAsNonRoot can verify it


def test_the_lock_pins_what_the_server_extra_needs_and_nothing_else() -> None:
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{line}: not pinned to one version"
            pins[name.lower().replace("_", "-")] = version
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["server"]
    for requirement in server:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, (
            f"{name} (server extra) is not in deploy/requirements.lock: make image-lock"
        )
    assert {"setuptools", "wheel"} <= set(pins)  # builds the mlgrid wheel offline
    assert not set(pins) & {"pytest", "mlflow", "ruff", "mypy", "grpcio-tools", "mlgrid", "pip"}


def _ignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_build_context_has_what_the_dockerfile_copies_and_not_local_state() -> None:
    patterns = _ignore_patterns()
    copies = [args.split() for instruction, args in _dockerfile() if instruction == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            assert not _ignored(source.rstrip("/"), patterns), f"COPY {source} is ignored"
    for source in ["sdk/mlgrid/__init__.py", "services/common/server.py", "pyproject.toml"]:
        assert not _ignored(source, patterns), source
    for local in [".venv/bin/python", ".venv-mlflow/bin/mlflow", "sdk/mlgrid/__pycache__/x.pyc",
                  "mlgrid.db", ".git/HEAD", "tests/conftest.py", "bench/results/x.json"]:  # fmt: skip
        assert _ignored(local, patterns), f"{local} would be sent to the Docker daemon"


def test_the_image_build_context_installs_as_a_complete_package(tmp_path: Path) -> None:
    """What `pip install '.[server]'` sees in the image: only the files the ignore file lets
    through. Built here into a wheel (no network: the venv's setuptools) and inspected."""
    patterns = _ignore_patterns()
    context = tmp_path / "context"
    for folder, dirs, files in os.walk(ROOT):
        relative = Path(folder).relative_to(ROOT)
        # Ignored folders may still hold re-included files (e.g. "**" then "!sdk/").
        dirs[:] = [d for d in dirs if d not in {".git", ".venv", ".venv-mlflow", "node_modules"}]
        for name in files:
            path = (relative / name).as_posix()
            if not _ignored(path, patterns):
                (context / relative).mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, context / path)
    assert sorted(p.name for p in context.iterdir()) == [
        "README.md", "deploy", "pyproject.toml", "sdk", "services", "setup.py"]  # fmt: skip
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("mlgrid-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in [
        "mlgrid/cli/main.py",
        "mlgrid/api/tracking/v1/tracking_service_pb2.py",
        "mlgrid_services/common/server.py",
        "mlgrid_services/gateway/forwarder.py",
    ]:
        assert expected in names, expected
    assert any(n.startswith("mlgrid_services/tracking/migrations/versions/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mlgrid = mlgrid.cli.main:cli" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_healthcheck_script_reports_a_real_server() -> None:
    script = DEPLOY / "healthcheck.py"
    running = start_server([], host="127.0.0.1", port=0)
    try:
        ok = subprocess.run(
            [sys.executable, str(script), f"127.0.0.1:{running.port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "SERVING" in ok.stdout
        running.health.enter_graceful_shutdown()  # now it says NOT_SERVING
        draining = subprocess.run(
            [sys.executable, str(script), f"127.0.0.1:{running.port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert draining.returncode == 1 and "NOT_SERVING" in draining.stdout
    finally:
        running.stop(0)
    down = subprocess.run(
        [sys.executable, str(script), f"127.0.0.1:{running.port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1 and "UNAVAILABLE" in down.stdout


def test_every_process_bound_beyond_loopback_passes_its_own_exposure_check(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each mlgrid process listens on 0.0.0.0 inside the compose network; with auth off it
    must say it is open on purpose, or it refuses to start (services/common/auth)."""
    from mlgrid.environment import MLGRID_ALLOW_OPEN
    from mlgrid_services.common.auth.settings import AuthSettings, check_exposure

    bound = {
        name: service
        for name, service in compose["services"].items()
        if "--host=0.0.0.0" in (service.get("command") or [])
    }
    assert set(bound) == {"gateway", "tracking", "artifacts", "registry", "projects"}
    for name, service in bound.items():
        for variable in ("MLGRID_AUTH", "MLGRID_ALLOW_OPEN", "MLGRID_AUTH_SECRET"):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in (service.get("environment") or {}).items():
            monkeypatch.setenv(variable, str(value))
        check_exposure(name, "0.0.0.0", AuthSettings.from_env(), MLGRID_ALLOW_OPEN.get())
