"""Every RPC of every service, with auth on: without credentials, with each permission level on
the resource it touches, and with a project run's token confined to the experiment, through
the gateway port, a tunnel and the service's own port.

The RPC list comes from the service descriptors, so a new RPC without a rule in its service or
an entry in rpc_matrix.py fails ``test_every_rpc_has_a_rule_and_an_entry``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.registry.v1 import registry_service_pb2 as reg
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.protocol import AUTHORIZATION_METADATA
from mlgrid_services.common.auth.identity import Identity
from mlgrid_services.common.auth.permissions import Permission
from mlgrid_services.common.auth.run_tokens import RunTokens
from mlgrid_services.common.auth.runtime import auth_runtime

from .conftest import AuthStack, auth_settings, code_of, error_of, start_auth_stack
from .rpc_matrix import CREATES, LISTS, MATRIX, SERVICES, TUNNELLED, Entry, Resources, invoke

LEVELS = [
    Permission.NO_PERMISSIONS,
    Permission.READ,
    Permission.USE,
    Permission.EDIT,
    Permission.MANAGE,
]
PATHS = ["gateway", "tunnel", "service"]
REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


@dataclass
class World:
    stack: AuthStack
    resources: Resources
    users: dict[Permission, list[tuple[str, str]]]


def _make_resources(stack: AuthStack) -> Resources:
    """An experiment with a run and a logged model, and a registered model with version 1,
    made by the admin."""
    admin = stack.admin
    tracking = SERVICES["tracking"][2](stack.gateway())
    registry = SERVICES["registry"][2](stack.gateway())
    name = f"exp-{len(stack.channels)}-{id(admin)}-{__import__('uuid').uuid4().hex[:6]}"
    experiment_id = tracking.CreateExperiment(
        trk.CreateExperimentRequest(name=name), metadata=admin
    ).experiment_id
    run = tracking.CreateRun(trk.CreateRunRequest(experiment_id=experiment_id), metadata=admin).run
    logged = tracking.CreateLoggedModel(
        trk.CreateLoggedModelRequest(experiment_id=experiment_id, name="lm"), metadata=admin
    ).model
    # A version's source must hold files: the run's model directory, on this machine's disk.
    model_dir = Path(urlsplit(run.info.artifact_uri).path) / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    model = f"model-{name}"
    registry.CreateRegisteredModel(reg.CreateRegisteredModelRequest(name=model), metadata=admin)
    registry.CreateModelVersion(
        reg.CreateModelVersionRequest(
            name=model, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        ),
        metadata=admin,
    )
    return Resources(
        experiment_id=experiment_id,
        experiment_name=name,
        run_id=run.info.run_id,
        logged_model_id=logged.info.model_id,
        model_name=model,
        artifact_uri=run.info.artifact_uri,
    )


def _grant(stack: AuthStack, resources: Resources, username: str, level: Permission) -> None:
    for kind, resource_id in (
        (auth_pb.RESOURCE_TYPE_EXPERIMENT, resources.experiment_id),
        (auth_pb.RESOURCE_TYPE_REGISTERED_MODEL, resources.model_name),
    ):
        stack.auth().SetPermission(
            auth_pb.SetPermissionRequest(
                permission=auth_pb.Permission(
                    resource_type=kind,
                    resource_id=resource_id,
                    username=username,
                    permission=level.name,
                )
            ),
            metadata=stack.admin,
        )


@contextmanager
def build_world(tmp_path: Path, store_uri: str | None = None) -> Iterator[World]:
    """A stack with auth on (its stores at ``store_uri``, SQLite by default), the resources,
    and a user per level holding only its grant on them."""
    stack = start_auth_stack(tmp_path, store_uri)
    try:
        # Nothing by default: what a user may do comes from its grant alone.
        stack.auth().SetDefaultPermission(
            auth_pb.SetDefaultPermissionRequest(permission="NO_PERMISSIONS"), metadata=stack.admin
        )
        resources = _make_resources(stack)
        users = {}
        for level in LEVELS:
            name = f"user-{level.name.lower().replace('_', '-')}"
            users[level] = stack.create_user(name)
            _grant(stack, resources, name, level)
        yield World(stack, resources, users)
    finally:
        stack.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(tmp_path_factory.mktemp("matrix")) as built:
        yield built


def _channel(
    world: World, service: str, path: str, credentials: list[tuple[str, str]]
) -> grpc.Channel:
    if path == "gateway":
        return world.stack.gateway()
    if path == "service":
        return world.stack.service_port(service)
    module, name, _ = SERVICES[service]
    full = module.DESCRIPTOR.services_by_name[name].full_name
    return world.stack.tunnel(full, credentials, TUNNELLED[service])


def cases() -> list[tuple[str, str, str]]:
    return [
        (service, method, path)
        for service, entries in MATRIX.items()
        for method in entries
        for path in PATHS
        if path != "tunnel" or service in TUNNELLED
    ]


def test_every_rpc_has_a_rule_and_an_entry(world: World) -> None:
    """A new RPC must say what it needs (its service's rules) and be walked here."""
    rules = {
        method
        for app in world.stack.stack.apps.values()
        for served in app.services
        for method in served.rules
    }
    for service, (module, name, _) in SERVICES.items():
        descriptor = module.DESCRIPTOR.services_by_name[name]
        for method in descriptor.methods:
            path = f"/{descriptor.full_name}/{method.name}"
            assert path in rules, f"{path} has no permission rule in its service"
            assert method.name in MATRIX[service], (
                f"{path} has no entry in tests/auth/rpc_matrix.py"
            )
    auth = auth_pb.DESCRIPTOR.services_by_name["AuthService"]
    for method in auth.methods:
        assert f"/{auth.full_name}/{method.name}" in rules


@pytest.mark.parametrize(("service", "method", "path"), cases())
def test_without_credentials_the_call_is_unauthenticated(
    world: World, service: str, method: str, path: str
) -> None:
    # Through a tunnel the CONNECT itself carries a user's credentials; the call carries none.
    channel = _channel(world, service, path, world.users[Permission.MANAGE])
    stub = SERVICES[service][2](channel)
    entry = MATRIX[service][method]
    err = error_of(invoke(stub, method, entry, world.resources, metadata=None))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED, err.details()
    assert "authorization" in (err.details() or "")


@pytest.mark.parametrize(("service", "method", "path"), cases())
def test_each_permission_level_gets_what_it_allows(
    world: World, service: str, method: str, path: str
) -> None:
    check_levels(world, service, method, path)


def check_levels(world: World, service: str, method: str, path: str) -> None:
    """Each level is allowed exactly what the call needs, and refused the rest naming both."""
    entry = MATRIX[service][method]
    for level in LEVELS:
        credentials = world.users[level]
        stub = SERVICES[service][2](_channel(world, service, path, credentials))
        if entry.needs == LISTS:
            _check_listing(world, stub, method, entry, level, credentials)
            continue
        if entry.needs == CREATES or level >= entry.needs:  # type: ignore[operator]
            resources = world.resources
            if entry.destroys:  # a fresh set, so the shared one survives
                resources = _make_resources(world.stack)
                _grant(world.stack, resources, _username(level), level)
            code = code_of(invoke(stub, method, entry, resources, credentials))
            assert code not in REFUSALS, f"{level.name} was refused {method} ({code})"
            continue
        err = error_of(invoke(stub, method, entry, world.resources, credentials))
        assert err.code() is grpc.StatusCode.PERMISSION_DENIED, (level, err.details())
        details = err.details() or ""
        assert f"needs {entry.needs.name}" in details and f"has {level.name}" in details, details  # type: ignore[union-attr]


def _username(level: Permission) -> str:
    return f"user-{level.name.lower().replace('_', '-')}"


def _check_listing(
    world: World,
    stub: object,
    method: str,
    entry: Entry,
    level: Permission,
    credentials: list[tuple[str, str]],
) -> None:
    assert entry.listed is not None and entry.target is not None
    request = entry.request(world.resources)
    answer = getattr(stub, method)(request, metadata=credentials, timeout=30)
    shown = entry.listed(answer)
    target = entry.target(world.resources)
    if level >= Permission.READ:
        assert target in shown, f"{level.name} does not see {target} in {method}"
    else:
        assert target not in shown, f"{level.name} sees {target} in {method}"


def _run_token(world: World, resources: Resources) -> list[tuple[str, str]]:
    """A project run's token of the user with MANAGE on ``resources``, confined to their
    experiment, minted as the projects service mints one (run_tokens.py) in the stack's store."""
    runtime = auth_runtime(auth_settings(world.stack.stack.backend_store_uri))
    token = RunTokens(lambda: runtime).mint(
        Identity(_username(Permission.MANAGE)), uuid.uuid4().hex, resources.experiment_id
    )
    return [(AUTHORIZATION_METADATA, f"Bearer {token}")]


@pytest.mark.parametrize(("service", "method", "path"), cases())
def test_a_run_token_gets_what_its_experiment_scope_allows(
    world: World, service: str, method: str, path: str
) -> None:
    """Its owner may MANAGE everything here; the run's token may do up to EDIT in its
    experiment (the tracking, artifacts and projects calls) and on the registered model, may
    create registered models but no experiment: every RPC, on every path."""
    entry = MATRIX[service][method]
    cap = Permission.EDIT
    resources = world.resources
    creatable = service == "registry"  # registered models, not experiments (run_tokens.py)
    allowed = entry.needs == LISTS or (
        creatable if entry.needs == CREATES else cap >= entry.needs  # type: ignore[operator]
    )
    if allowed and entry.destroys:  # a fresh set, so the shared one survives
        resources = _make_resources(world.stack)
        _grant(world.stack, resources, _username(Permission.MANAGE), Permission.MANAGE)
    token = _run_token(world, resources)
    stub = SERVICES[service][2](_channel(world, service, path, token))
    if entry.needs == LISTS:
        _check_listing(world, stub, method, entry, Permission.READ, token)
        return
    if allowed:
        code = code_of(invoke(stub, method, entry, resources, token))
        assert code not in REFUSALS, f"a run token was refused {method} ({code})"
        return
    err = error_of(invoke(stub, method, entry, resources, token))
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED, err.details()
    details = err.details() or ""
    if entry.needs == CREATES:
        assert f"{method} is not allowed with a project run's token" in details, details
    else:
        assert f"needs {entry.needs.name}" in details and f"has {cap.name}" in details, details  # type: ignore[union-attr]
