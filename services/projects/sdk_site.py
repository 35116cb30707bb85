"""The mlgrid SDK for the environments the projects service builds (virtualenv, conda).

MLflow makes its own running version importable in the environments it creates; mlgrid does the
same with the code that runs the service. The SDK wheel (sdk_wheel.py) and its dependencies are
installed once per interpreter kind (Python version and platform) into an *SDK site*, a
directory in the environment cache named by its content, and each environment gets a ``.pth``
file pointing at it. Put last on ``sys.path``, the site never shadows a dependency the project
pins itself; and since the ``.pth`` is written each time an environment is activated, a changed
mlgrid reaches existing environments without rebuilding them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from mlgrid.env_cache import (
    COMPLETE_MARKER,
    Log,
    content_key,
    env_root,
    key_lock,
    publish,
    run_logged,
    scratch_dir,
)
from mlgrid.exceptions import InvalidParameterValue

from .sdk_wheel import sdk_wheel

__all__ = ["PTH_NAME", "link_sdk"]

#: The file that puts the SDK site on an environment's path.
PTH_NAME = "mlgrid-sdk.pth"
_PIP = ("install", "--disable-pip-version-check", "--no-input", "--quiet")
_DESCRIBE = (
    "import sys, sysconfig; "
    "print(sys.implementation.cache_tag, sysconfig.get_platform(), sysconfig.get_paths()['purelib'])"
)


def _describe(python: Path) -> tuple[str, str]:
    """(interpreter kind, site-packages directory) of ``python``."""
    try:
        done = subprocess.run(
            [str(python), "-c", _DESCRIBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidParameterValue(f"cannot run the environment's Python {python}: {exc}") from exc
    if done.returncode != 0:
        raise InvalidParameterValue(
            f"the environment's Python {python} failed: {done.stderr.strip()[-500:]}"
        )
    cache_tag, platform, purelib = done.stdout.strip().split(" ", 2)
    return f"{cache_tag}-{platform}", purelib


def _sdk_site(python: Path, kind: str, log: Log) -> Path:
    wheel = sdk_wheel()
    root = env_root() / "sdk-sites"
    key = content_key({"kind": "sdk-site", "wheel": wheel.content_hash, "python": kind})
    final = root / f"{kind}-{key}"
    if (final / COMPLETE_MARKER).exists():
        return final
    with key_lock(root, key):
        if (final / COMPLETE_MARKER).exists():
            return final
        log(f"installing the mlgrid SDK for {kind} into {final}\n")
        scratch = scratch_dir(root, key)
        try:
            # The service's pip installs for the target interpreter (it need not have pip).
            pip = [sys.executable, "-m", "pip", "--python", str(python)]
            run_logged(
                [*pip, *_PIP, "--target", str(scratch), str(wheel.path)],
                log,
                "installing the mlgrid SDK",
            )
            publish(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return final


def link_sdk(python: Path, log: Log) -> Path:
    """Makes ``import mlgrid`` work for ``python`` (an environment's interpreter); returns the
    SDK site it now points at."""
    kind, purelib = _describe(python)
    site = _sdk_site(python, kind, log)
    pth = Path(purelib) / PTH_NAME
    text = f"{site}\n"
    if not pth.exists() or pth.read_text() != text:
        pth.parent.mkdir(parents=True, exist_ok=True)
        scratch = pth.with_name(f".{PTH_NAME}.{os.getpid()}.{threading.get_ident()}")
        scratch.write_text(text)
        scratch.replace(pth)  # concurrent runs of one environment write the same line
    return site
