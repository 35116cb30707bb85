"""Generates the Python stubs (and .pyi type stubs) of every contract under protos/.

    python tools/gen_protos.py            # regenerate into sdk/ (what `make proto` runs)
    python tools/gen_protos.py --out DIR  # generate elsewhere (the drift test compares the two)

The proto root is the import root: protos/mlgrid/api/x/v1/y.proto becomes
sdk/mlgrid/api/x/v1/y_pb2.py, imported as mlgrid.api.x.v1.y_pb2, so nothing is rewritten.

The runtime stubs' generator is pinned in tools/proto-generator.txt and runs from its own virtual
environment, .venv-proto (made on first use, remade when the pins change), so the stubs are the
same byte for byte whatever is installed in the development environment, and they load on the
oldest protobuf and grpcio runtimes mlgrid supports (see that file). The .pyi type stubs come
from mypy-protobuf in the development environment (pinned in pyproject.toml). grpcio-tools 1.62 has wheels for Python
3.8 to 3.12: on a newer interpreter the environment is made with the newest of python3.12,
python3.11, python3.10 found on PATH (or $MLGRID_PROTO_PYTHON).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "sdk"
REQUIREMENTS = ROOT / "tools" / "proto-generator.txt"
GENERATOR_VENV = ROOT / ".venv-proto"
#: Python versions grpcio-tools 1.62 ships wheels for.
SUPPORTED = ((3, 8), (3, 12))


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("mlgrid/**/*.proto"))


def _bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def _interpreter_for_generator() -> str:
    """A Python that grpcio-tools 1.62 installs on: this one if it fits, else one on PATH."""
    explicit = os.environ.get("MLGRID_PROTO_PYTHON")
    if explicit:
        return explicit
    if SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]:
        return sys.executable
    for name in ("python3.12", "python3.11", "python3.10"):
        found = shutil.which(name)
        if found and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
            return found
    raise SystemExit(
        "generating the stubs needs Python 3.8-3.12 (the pinned grpcio-tools 1.62 has no wheels "
        f"for Python {sys.version_info[0]}.{sys.version_info[1]}); put python3.12 on PATH or set "
        "MLGRID_PROTO_PYTHON to one"
    )


def generator_python() -> Path:
    """The generator environment's interpreter, made or remade when the pins changed."""
    stamp = GENERATOR_VENV / "requirements.txt"
    python = _bin(GENERATOR_VENV, "python")
    wanted = REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(GENERATOR_VENV, ignore_errors=True)
    base = _interpreter_for_generator()
    if base == sys.executable:
        venv.create(GENERATOR_VENV, with_pip=True)
    else:
        subprocess.run([base, "-m", "venv", str(GENERATOR_VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def _protoc(python: str | Path, include: Path, outputs: list[str], files: list[str]) -> None:
    args = [str(python), "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}"]
    if subprocess.run([*args, *outputs, *files]).returncode != 0:
        raise SystemExit("protoc failed")


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    # Runtime stubs (_pb2.py, _pb2_grpc.py): the pinned generator.
    python = generator_python()
    include = subprocess.run(
        [str(python), "-c", "import grpc_tools, os; print(os.path.dirname(grpc_tools.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    _protoc(
        python, Path(include) / "_proto", [f"--python_out={out}", f"--grpc_python_out={out}"], files
    )
    # Type stubs (.pyi): mypy-protobuf from this (the development) environment.
    from grpc_tools import protoc

    bin_dir = Path(sys.executable).parent
    _protoc(
        sys.executable,
        Path(protoc.__file__).parent / "_proto",
        [
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
        ],
        files,
    )
    # Every generated directory is a regular package (the SDK ships them as such).
    for proto in files:
        package_dir = out / Path(proto).parent
        while package_dir != out and package_dir != out / "mlgrid":
            (package_dir / "__init__.py").touch()
            package_dir = package_dir.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
