"""Project images on the real engine: built FROM a project's image, tagged by content, pushed
to real registries (with the Docker config's credentials where the registry wants them)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.projects.containers.engine import EngineUnavailable, connect
from mlgrid_services.projects.containers.images import (
    PROJECT_CODE_DIR,
    ImagePushError,
    build_project_image,
    push_image,
)

from .helpers import write


def _run_to_end(image: str, command: list[str]) -> bytes:
    """Runs a container to its end and returns its output. Not `containers.run(...)`: that
    follows the log, and Podman's follow once outlived the container in CI (a 300 s timeout)."""
    container = connect().containers.run(image, command, detach=True)
    try:
        assert container.wait(timeout=120)["StatusCode"] == 0, container.logs()
        return bytes(container.logs())
    finally:
        container.remove(force=True)


def _build(base: str, project: Path, **kwargs):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    image = build_project_image(
        connect(), base, project, "mlgrid-test-images", log=lines.append, **kwargs
    )
    return image, "".join(lines)


def test_a_built_image_holds_the_project_and_can_import_mlgrid(
    container_engine, tmp_path: Path
) -> None:
    project = write(
        tmp_path / "p",
        {"main.py": "import mlgrid, os\nprint('sdk', mlgrid.__name__, os.getcwd())\n"},
    )
    image, output = _build(container_engine.python_image, project)
    assert image.built is True
    assert "building image mlgrid-test-images:" in output
    ran = _run_to_end(image.tag, ["python", "main.py"])
    assert ran.decode() == f"sdk mlgrid {PROJECT_CODE_DIR}\n"


def test_the_tag_follows_the_content(container_engine, tmp_path: Path) -> None:
    project = write(tmp_path / "p", {"main.sh": "echo 1\n"})
    tiny = container_engine.tiny_image
    first, _ = _build(tiny, project, install_sdk=False)
    again, output = _build(tiny, project, install_sdk=False)
    assert (again.tag, again.built) == (first.tag, False)
    assert f"reusing image {first.tag}" in output
    (project / "main.sh").write_text("echo 2\n")
    changed, _ = _build(tiny, project, install_sdk=False)
    assert changed.tag != first.tag
    assert changed.repository == first.repository == "mlgrid-test-images"
    ran = _run_to_end(changed.tag, ["sh", "main.sh"])
    assert ran == b"2\n"


def test_a_push_returns_the_reference_by_digest_the_registry_serves(
    container_engine, tmp_path: Path
) -> None:
    project = write(tmp_path / "p", {"main.sh": "echo pushed\n"})
    image, _ = _build(container_engine.tiny_image, project, install_sdk=False)
    repository = f"{container_engine.registry}/team/pushed"
    reference = push_image(connect(), image, repository=repository)
    name, digest = reference.split("@")
    assert name == repository
    tag = image.tag.rsplit(":", 1)[1]
    request = urllib.request.Request(
        f"http://{container_engine.registry}/v2/team/pushed/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request) as answer:
        assert answer.headers["Docker-Content-Digest"] == digest
    # The reference by digest is pullable as such.
    client = connect()
    client.images.remove(f"{repository}:{tag}")
    pulled = client.images.pull(reference)
    assert pulled.id == image.image_id


def test_a_push_uses_the_docker_configs_credentials(
    container_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = write(tmp_path / "p", {"main.sh": "echo private\n"})
    image, _ = _build(container_engine.tiny_image, project, install_sdk=False)
    repository = f"{container_engine.auth_registry}/team/private"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-credentials"))
    with pytest.raises(ImagePushError) as refused:
        push_image(connect(), image, repository=repository)
    assert f"pushing {repository}:" in refused.value.message
    monkeypatch.setenv("DOCKER_CONFIG", str(container_engine.docker_config(tmp_path / "docker")))
    reference = push_image(connect(), image, repository=repository)
    assert reference.startswith(f"{repository}@sha256:")
    listing = urllib.request.Request(f"http://{container_engine.auth_registry}/v2/_catalog")
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(listing)
    assert anonymous.value.code == 401


def test_a_base_image_that_does_not_exist_is_an_error_naming_the_field(
    container_engine, tmp_path: Path
) -> None:
    project = write(tmp_path / "p", {"main.py": "print(1)\n"})
    with pytest.raises(InvalidParameterValue) as caught:
        build_project_image(connect(), "localhost/no-such-image:1", project, "mlgrid-test-images")
    assert caught.value.message.startswith(
        "docker_env.image 'localhost/no-such-image:1' does not exist"
    )


def test_an_unreachable_engine_is_named_by_docker_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(EngineUnavailable) as caught:
        connect()
    assert caught.value.message.startswith(
        f"no container engine answers at DOCKER_HOST=unix://{tmp_path}/nothing.sock"
    )


def test_the_docker_config_written_for_tests_is_what_docker_reads(
    container_engine, tmp_path: Path
) -> None:
    config = json.loads(
        (container_engine.docker_config(tmp_path / "d") / "config.json").read_text()
    )
    assert list(config["auths"]) == [container_engine.auth_registry]
