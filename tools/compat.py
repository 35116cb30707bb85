"""The compatibility tier (`make compat`, run by .ci/run): mlgrid installed as a user would, at
both ends of the ranges pyproject.toml claims.

    python tools/compat.py                 # both ends, in parallel
    python tools/compat.py --only oldest   # one end

For each end, in a throwaway virtual environment:

1. ``pip install <repo>`` with that end's pins: the base SDK alone. It must import every stub and
   say plainly that embedded mode needs ``mlgrid[server]``.
2. ``pip install '<repo>[server]'`` (same pins) and pytest, then a subset of the test suite run
   against the installed package: the Client and the fluent API embedded and through a gateway
   (tests/sdk), MLflow 3's logged models, and the embedded stack.

The oldest end is Python 3.10 with the lowest protobuf and grpcio pyproject.toml allows; the
newest is the newest Python found (3.13 or later) with whatever pip resolves as newest. pip's
cache makes repeated runs fast. Interpreters come from PATH, else from pyenv's versions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The subset of the suite each end runs (pytest arguments, relative to the repository).
TESTS = [
    "tests/sdk/test_client.py",
    "tests/sdk/test_logged_models.py",
    "tests/sdk/test_fluent.py",
    "tests/test_stack_embedded.py",
    # Pipelines on the caller's thread use grpcio's internal layer: both ends must run them.
    "tests/sdk/test_grpc_stream.py",
    "tests/sdk/test_call_pipeline.py",
    "-k",
    "not pandas",  # pandas is an extra of its own, not part of what this tier claims
]

#: Run by the base (SDK-only) install: every contract loads, messages round-trip, and embedded
#: mode names the extra it needs.
BASE_SMOKE = """
import importlib, importlib.util, pkgutil, sys
import google.protobuf, grpc
import mlgrid, mlgrid.api
modules = [m.name for m in pkgutil.walk_packages(mlgrid.api.__path__, "mlgrid.api.")]
for name in modules:
    importlib.import_module(name)
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
request = pb.SearchLoggedModelsRequest(
    experiment_ids=["1"], order_by=[pb.LoggedModelOrderBy(field_name="metrics.acc", ascending=False)]
)
again = pb.SearchLoggedModelsRequest.FromString(request.SerializeToString())
assert again.order_by[0].HasField("ascending") and not again.order_by[0].ascending
if importlib.util.find_spec("sqlalchemy") is not None:
    sys.exit("the base install must not pull in the server's dependencies")
try:
    mlgrid.MlflowClient("sqlite:///never.db").search_experiments()
except RuntimeError as exc:
    assert "mlgrid[server]" in str(exc), exc
else:
    sys.exit("embedded mode without mlgrid[server] did not say what it needs")
print(f"base SDK ok: {len(modules)} stub modules, protobuf {google.protobuf.__version__}, "
      f"grpcio {grpc.__version__}, Python {sys.version.split()[0]}")
"""


@dataclass
class End:
    """One end of the supported ranges."""

    name: str
    pythons: tuple[str, ...]  # interpreter versions to look for, preferred first
    pins: tuple[str, ...]  # requirement specifiers added to every install
    log: list[str] = field(default_factory=list)
    ok: bool = False
    seconds: float = 0.0


ENDS = {
    "oldest": End(
        "oldest",
        ("3.10",),
        (
            "protobuf==4.25.1",
            "grpcio==1.62.0",
            "grpcio-status==1.62.0",
            "grpcio-health-checking==1.62.0",
            "grpcio-reflection==1.62.0",
        ),
    ),
    "newest": End("newest", ("3.14", "3.13"), ()),
}


def _works(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0
    except OSError:
        return False


def find_python(versions: tuple[str, ...]) -> str | None:
    """The first interpreter of ``versions`` on PATH or among pyenv's versions."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version in versions:
        found = shutil.which(f"python{version}")
        if found and _works(found):
            return found
        for candidate in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}")):
            if _works(str(candidate)):
                return str(candidate)
    return None


def _run(end: End, args: list[str], cwd: Path | None = None) -> bool:
    shown = " ".join(a if "\n" not in a else "<script>" for a in args)
    started = time.monotonic()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    end.log.append(f"$ {shown}  [{time.monotonic() - started:.0f} s]")
    output = (done.stdout + done.stderr).strip()
    # pip warns about index locations this machine lacks: noise, not news.
    lines = [line for line in output.splitlines() if "is ignored: it is neither" not in line]
    end.log.extend(lines[-60:] if done.returncode else lines[-3:])
    return done.returncode == 0


def run_end(end: End, workdir: Path) -> None:
    started = time.monotonic()
    try:
        python = find_python(end.pythons)
        if python is None:
            end.log.append(f"no Python {' or '.join(end.pythons)} on PATH or in pyenv")
            return
        env_dir = workdir / end.name
        pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        # No .pyc compiling at install: most of what is installed is never imported here.
        pip += ["--disable-pip-version-check", "--no-compile"]
        py = str(env_dir / "bin" / "python")
        wheel = next(workdir.glob("mlgrid-*.whl")).as_uri()
        end.ok = (
            _run(end, [python, "-m", "venv", str(env_dir)])
            and _run(end, [*pip, f"mlgrid @ {wheel}", *end.pins])
            and _run(end, [py, "-c", BASE_SMOKE], cwd=workdir)
            and _run(
                end, [*pip, f"mlgrid[server] @ {wheel}", *end.pins, "pytest>=8", "pytest-timeout"]
            )
            and _run(
                end,
                [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *TESTS],
                cwd=ROOT,
            )
        )
    finally:
        end.seconds = time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(ENDS))
    options = parser.parse_args()
    ends = [ENDS[options.only]] if options.only else list(ENDS.values())
    with tempfile.TemporaryDirectory(prefix="mlgrid-compat-") as workdir:
        # One wheel, built once, installed at both ends (as a user's pip would install it).
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "-w",
                workdir,
                str(ROOT),
            ],
            check=True,
        )
        threads = [threading.Thread(target=run_end, args=(e, Path(workdir))) for e in ends]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for end in ends:
        verdict = "ok" if end.ok else "FAILED"
        print(
            f"== {end.name}: {verdict} in {end.seconds:.0f} s ({', '.join(end.pins) or 'newest'})"
        )
        print("\n".join(end.log))
    return 0 if all(end.ok for end in ends) else 1


if __name__ == "__main__":
    sys.exit(main())
