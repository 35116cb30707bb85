"""Images built on the run's container engine (tests/fixtures/containers.py), once per test run.

* ``mlgrid_image``: deploy/Dockerfile built by `make image`, as an operator builds it;
* ``standin_images``: local stand-ins for the PostgreSQL and MinIO images deploy/compose.yaml
  pins (tests/deploy/standins/; nothing can be pulled from a public registry here).

Every build starts from the engine fixture's Debian bookworm + python3 image. The host's CA
bundle reaches pip through a build secret (this machine's route to the package index intercepts
TLS); nothing of it stays in an image. xdist workers of one run share each image (a lock per
image, and a tag named by a hash of what it is built from). A stand-in is also saved in the
test cache (tests/fixtures/containers.py, ``MLGRID_TEST_CACHE``) under that hash, and later
runs, whose engine starts with empty storage, load it instead of building it again.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fixtures.containers import _locked, cache_dir

from .cli_args import ROOT

BUILD_INPUTS = ("deploy/Dockerfile", "deploy/requirements.lock", "deploy/entrypoint.sh",
                "deploy/healthcheck.py", "pyproject.toml", "setup.py")  # fmt: skip
STANDINS = Path(__file__).parent / "standins"


def _ca_bundle() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _image_exists(engine: Any, tag: str) -> bool:
    podman, engine_env = engine.podman_cli()
    return subprocess.run([*podman, "image", "exists", tag], env=engine_env).returncode == 0


def _report_size(engine: Any, tag: str, what: str, seconds: float) -> None:
    podman, engine_env = engine.podman_cli()
    size = subprocess.run(
        [*podman, "image", "inspect", "--format", "{{.Size}}", tag],
        env=engine_env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"\n{what}: {seconds:.0f} s, {int(size) / 1e6:.0f} MB ({tag})")


@pytest.fixture(scope="session")
def mlgrid_image(container_engine: Any) -> str:
    """`make image` on the engine, once per test run (xdist workers share it)."""
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        digest.update((ROOT / name).read_bytes())
    tag = f"localhost/mlgrid-image-test:{digest.hexdigest()[:12]}"
    podman, engine_env = container_engine.podman_cli()
    with container_engine.locked("mlgrid-image"):
        if _image_exists(container_engine, tag):
            return tag
        command = [
            "make", "--no-print-directory", "image",
            f"ENGINE={' '.join(podman)}",
            f"BASE_IMAGE={container_engine.python_image}",
            f"IMAGE={tag}",
            "IMAGE_BUILD_FLAGS=--network=host",
        ]  # fmt: skip
        ca = _ca_bundle()
        if ca:
            command.append(f"CA_BUNDLE={ca}")
        started = time.monotonic()
        built = subprocess.run(
            command, cwd=ROOT, env=engine_env, capture_output=True, text=True, timeout=1200
        )
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        _report_size(container_engine, tag, "make image", time.monotonic() - started)
    return tag


def _build_standin(engine: Any, name: str, build_args: dict[str, str]) -> str:
    """tests/deploy/standins/<name> built on the engine; its tag."""
    context = STANDINS / name
    digest = hashlib.sha256(repr(sorted(build_args.items())).encode())
    for path in sorted(context.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    key = digest.hexdigest()[:12]
    tag = f"localhost/mlgrid-standin-{name}:{key}"
    podman, engine_env = engine.podman_cli()
    with engine.locked(f"standin-{name}"):
        if _image_exists(engine, tag) or _load_cached(engine, name, key, tag):
            return tag
        command = [*podman, "build", "--network=host", "--tag", tag]
        command += [f"--build-arg={key}={value}" for key, value in build_args.items()]
        ca = _ca_bundle()
        if ca:
            command.append(f"--secret=id=ca-bundle,src={ca}")
        started = time.monotonic()
        built = subprocess.run(
            [*command, str(context)], env=engine_env, capture_output=True, text=True, timeout=900
        )
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        _report_size(engine, tag, f"stand-in {name}", time.monotonic() - started)
        _save_cached(engine, name, key, tag)
    return tag


def _cached(name: str, key: str) -> Path:
    return cache_dir() / f"standin-{name}-{key}.tar"


def _load_cached(engine: Any, name: str, key: str, tag: str) -> bool:
    """Loads the stand-in saved by an earlier run from the same build context (the engine's
    storage is the run's own, so a build would otherwise be redone every run: ~90 s)."""
    saved = _cached(name, key)
    podman, engine_env = engine.podman_cli()
    with _locked(cache_dir() / f".standin-{name}.lock"):
        if not saved.is_file():
            return False
        started = time.monotonic()
        loaded = subprocess.run(
            [*podman, "load", "--input", str(saved)], env=engine_env, capture_output=True
        )
        if loaded.returncode == 0 and _image_exists(engine, tag):
            print(f"\nstand-in {name}: loaded in {time.monotonic() - started:.0f} s ({saved})")
            return True
        saved.unlink(missing_ok=True)  # unreadable: build it again
        return False


def _save_cached(engine: Any, name: str, key: str, tag: str) -> None:
    """Keeps the built stand-in for later runs, in place of the one of an older context."""
    saved = _cached(name, key)
    podman, engine_env = engine.podman_cli()
    with _locked(cache_dir() / f".standin-{name}.lock"):
        partial = saved.with_name(f"{saved.stem}.partial.tar")
        partial.unlink(missing_ok=True)
        done = subprocess.run(
            [*podman, "save", "--output", str(partial), tag], env=engine_env, capture_output=True
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            return  # only a cache: the next run builds again
        os.replace(partial, saved)
        for older in cache_dir().glob(f"standin-{name}-*.tar"):
            if older != saved:
                older.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def standin_images(container_engine: Any) -> dict[str, str]:
    """Local images for what deploy/compose.yaml pulls: {"postgres": tag, "s3": tag}.

    "s3" serves both the minio service (`minio server DIR`) and minio-init (`mc`). moto is pinned
    to the version the tests' own S3 server runs (tests/fixtures/s3.py).
    """
    base = {"BASE_IMAGE": container_engine.python_image}
    return {
        "postgres": _build_standin(container_engine, "postgres", base),
        "s3": _build_standin(container_engine, "s3", {**base, "MOTO_VERSION": version("moto")}),
    }
