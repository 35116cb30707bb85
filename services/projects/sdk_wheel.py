"""A wheel of the running mlgrid, so project environments and images can ``import mlgrid``.

MLflow puts its own running version into the environments it makes; mlgrid does the same with
the code that is running now (which need not be on any package index): the ``mlgrid`` and
``mlgrid_services`` packages as installed here, with this distribution's metadata (its
dependencies, extras and console scripts). The wheel is pure Python, built without setuptools,
byte for byte reproducible (sorted entries, fixed timestamps), and cached by its content under
``MLGRID_ENV_ROOT/sdk-wheels``; its content hash is part of every environment and image key, so
they are rebuilt when mlgrid's code changes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import io
import os
import threading
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlgrid.env_cache import env_root

__all__ = ["SdkWheel", "sdk_wheel"]

DISTRIBUTION = "mlgrid"
#: Import packages the wheel carries.
PACKAGES = ("mlgrid", "mlgrid_services")
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SdkWheel:
    """A built wheel of the running mlgrid."""

    path: Path
    version: str
    #: Hash of the wheel's content (first 16 hex digits of its sha256).
    content_hash: str

    def requirement(self, extras: tuple[str, ...] = ()) -> str:
        """What pip installs: the wheel file, with extras (``mlgrid[server]``) if asked for."""
        suffix = f"[{','.join(extras)}]" if extras else ""
        return f"{DISTRIBUTION}{suffix} @ file://{self.path}"


def _package_files(name: str) -> list[tuple[str, Path]]:
    """(archive name, file) of every file of import package ``name`` as installed here."""
    module = importlib.import_module(name)
    root = Path(next(iter(module.__path__)))
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
        for file in sorted(files):
            if file.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(directory) / file
            found.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return found


def _metadata_text(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    lines = ["Metadata-Version: 2.1", f"Name: {DISTRIBUTION}", f"Version: {dist.version}"]
    if meta["Requires-Python"]:
        lines.append(f"Requires-Python: {meta['Requires-Python']}")
    lines += [f"Provides-Extra: {extra}" for extra in meta.get_all("Provides-Extra") or []]
    lines += [f"Requires-Dist: {req}" for req in meta.get_all("Requires-Dist") or []]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _wheel_bytes(dist: metadata.Distribution) -> bytes:
    info = f"{DISTRIBUTION}-{dist.version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for package in PACKAGES:
        entries += [(name, path.read_bytes()) for name, path in _package_files(package)]
    entries.append((f"{info}/METADATA", _metadata_text(dist).encode()))
    wheel = "Wheel-Version: 1.0\nGenerator: mlgrid\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries.append((f"{info}/WHEEL", wheel.encode()))
    scripts = dist.read_text("entry_points.txt")
    if scripts:
        entries.append((f"{info}/entry_points.txt", scripts.encode()))
    record = [_record_line(name, data) for name, data in entries] + [f"{info}/RECORD,,"]
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            item = zipfile.ZipInfo(name, date_time=_EPOCH)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(item, data)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _built() -> tuple[str, bytes, str]:
    """(version, wheel bytes, content hash); the running code does not change, so once."""
    dist = metadata.distribution(DISTRIBUTION)
    data = _wheel_bytes(dist)
    return dist.version, data, hashlib.sha256(data).hexdigest()[:16]


def sdk_wheel() -> SdkWheel:
    """The wheel of the running mlgrid, as a file in the environment cache."""
    version, data, content_hash = _built()
    directory = env_root() / "sdk-wheels" / content_hash
    path = directory / f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        scratch.write_bytes(data)
        os.replace(scratch, path)  # concurrent builders write the same bytes
    return SdkWheel(path=path, version=version, content_hash=content_hash)
