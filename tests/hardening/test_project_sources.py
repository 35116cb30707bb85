"""Project URIs from clients are held to the deployment's source policy before anything is
fetched: no server-local paths by default, only allowlisted git/zip hosts, never loopback,
link-local or private addresses unless allowed, and a size limit on what is fetched."""

from __future__ import annotations

import http.server
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.fetch import SourceTooLarge, fetch_project
from mlgrid_services.projects.source_policy import (
    SourcePolicy,
    check_project_source,
)
from tests.projects.helpers import commit_all, git

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


class _Streamer(http.server.BaseHTTPRequestHandler):
    """Serves /endless.zip (no length, bytes until the client hangs up) and /declared.zip
    (a Content-Length of 1 GiB); counts what it managed to send."""

    sent = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/declared.zip":
            self.send_header("Content-Length", str(1024**3))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(16 * 1024):  # at most 1 GiB
                self.wfile.write(chunk)
                type(self).sent += len(chunk)
        except OSError:
            pass  # the client stopped reading


@pytest.fixture
def streamer() -> Iterator[tuple[str, type[_Streamer]]]:
    handler = type("Streamer", (_Streamer,), {"sent": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _submit(grpc_stack, uri: str) -> grpc.RpcError:
    projects = pb_grpc.ProjectsServiceStub(grpc_stack.channel())
    with pytest.raises(grpc.RpcError) as info:
        projects.SubmitRun(pb.SubmitRunRequest(backend="local", uri=uri), timeout=60)
    return info.value


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    cap = 1024**2
    monkeypatch.setenv("MLGRID_PROJECTS_MAX_SOURCE_BYTES", str(cap))
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOWED_HOSTS", "*")
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES", "true")
    return cap


def _assert_too_large(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MLGRID_PROJECTS_MAX_SOURCE_BYTES" in (error.details() or ""), error.details()


def test_an_endless_download_is_stopped_at_the_size_limit(
    grpc_stack, small_cap: int, streamer: tuple[str, type[_Streamer]]
) -> None:
    url, handler = streamer
    _assert_too_large(_submit(grpc_stack, f"{url}/endless.zip"))
    # The client hung up just past the cap: the server got to send little more (its socket
    # buffers), not the gigabyte it offered.
    time.sleep(0.5)
    assert handler.sent < small_cap + 16 * 1024**2


def test_a_download_declaring_a_length_past_the_limit_is_refused_before_reading(
    grpc_stack, small_cap: int, streamer: tuple[str, type[_Streamer]]
) -> None:
    url, handler = streamer
    _assert_too_large(_submit(grpc_stack, f"{url}/declared.zip"))
    time.sleep(0.5)
    assert handler.sent < 16 * 1024**2


def test_a_zip_declaring_more_than_the_limit_is_refused_before_extracting(
    grpc_stack, small_cap: int, tmp_path: Path
) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MLproject", "name: bomb\n")
        zf.writestr("zeros.bin", b"\0" * (4 * small_cap))  # compresses to a few KiB
    assert archive.stat().st_size < small_cap
    _assert_too_large(_submit(grpc_stack, str(archive)))


def test_a_git_clone_past_the_limit_is_stopped(grpc_stack, small_cap: int, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "MLproject").write_text("name: big\n")
    (repo / "data.bin").write_bytes(os.urandom(4 * small_cap))  # incompressible
    git(repo, "init", "-q")
    commit_all(repo, "big")
    _assert_too_large(_submit(grpc_stack, f"file://{repo}"))


def test_a_local_copy_past_the_limit_is_stopped(grpc_stack, small_cap: int, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text("name: big\n")
    for i in range(8):
        (project / f"part{i}.bin").write_bytes(b"x" * (small_cap // 2))
    _assert_too_large(_submit(grpc_stack, str(project)))


def test_a_project_under_the_limit_is_fetched_whole(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text("name: small\n")
    (project / "data.bin").write_bytes(b"x" * 2048)
    fetched = fetch_project(str(project), None, tmp_path / "copy", max_bytes=4096)
    assert (fetched.directory / "data.bin").stat().st_size == 2048
    with pytest.raises(SourceTooLarge):
        fetch_project(str(project), None, tmp_path / "copy2", max_bytes=1024)


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
