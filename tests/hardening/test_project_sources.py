"""Project URIs from clients are held to the deployment's source policy before anything is
fetched: no server-local paths by default, only allowlisted git/zip hosts, never loopback,
link-local or private addresses unless allowed, and a size limit on what is fetched."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.projects.source_policy import (
    SourcePolicy,
    check_project_source,
    check_source_size,
)

DEFAULTS = SourcePolicy(
    allow_local=False,
    allowed_hosts=("github.com", "gitlab.com", "bitbucket.org"),
    allow_private_addresses=False,
    max_source_bytes=1024,
)


@pytest.mark.parametrize(
    ("uri", "setting"),
    [
        ("~/", "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS"),
        ("/etc", "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS"),
        ("file:///root/.ssh", "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS"),
        ("./project#sub", "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS"),
        ("http://169.254.169.254/latest/meta-data.zip", "MLGRID_PROJECTS_ALLOWED_HOSTS"),
        ("https://127.0.0.1:8080/repo.git", "MLGRID_PROJECTS_ALLOWED_HOSTS"),
        ("git@internal.corp:team/repo.git", "MLGRID_PROJECTS_ALLOWED_HOSTS"),
        ("https://evil.example/x.zip", "MLGRID_PROJECTS_ALLOWED_HOSTS"),
    ],
)
def test_default_policy_refuses_local_and_unlisted_sources_naming_the_setting(
    uri: str, setting: str
) -> None:
    with pytest.raises(InvalidParameterValue) as raised:
        check_project_source(uri, DEFAULTS)
    assert setting in str(raised.value)


def test_an_allowed_host_that_resolves_to_an_internal_address_is_refused() -> None:
    policy = SourcePolicy(False, ("*",), False, 1024)
    for uri in ("http://localhost:9/x.zip", "https://169.254.169.254/repo.git", "git://10.0.0.1/r"):
        with pytest.raises(InvalidParameterValue, match="MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES"):
            check_project_source(uri, policy)
    # Allowed explicitly, nothing is refused (resolving names only; nothing is fetched here).
    check_project_source("http://localhost:9/x.zip", SourcePolicy(False, ("*",), True, 1024))


def test_allowed_hosts_match_names_and_subdomains() -> None:
    policy = SourcePolicy(False, ("git.example.com", "*.corp.example"), True, 1024)
    check_project_source("https://git.example.com/team/repo.git", policy)
    check_project_source("ssh://git@src.corp.example/team/repo.git", policy)
    with pytest.raises(InvalidParameterValue, match="MLGRID_PROJECTS_ALLOWED_HOSTS"):
        check_project_source("https://example.com/repo.git", policy)


def test_a_fetched_project_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: big\n")
    (tmp_path / "data.bin").write_bytes(b"x" * 2048)
    with pytest.raises(InvalidParameterValue, match="MLGRID_PROJECTS_MAX_SOURCE_BYTES"):
        check_source_size(tmp_path, "https://github.com/x/big.git", DEFAULTS)


def test_the_projects_service_refuses_a_server_path_before_copying_anything(
    grpc_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "MLproject").write_text("name: secrets\nentry_points:\n  main:\n    command: id\n")
    projects = pb_grpc.ProjectsServiceStub(grpc_stack.channel())
    with pytest.raises(grpc.RpcError) as info:
        projects.SubmitRun(pb.SubmitRunRequest(backend="local", uri=str(home)), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS" in (info.value.details() or "")
