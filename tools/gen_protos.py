"""Generates the Python stubs (and .pyi type stubs) of every contract under protos/.

    python tools/gen_protos.py            # regenerate into sdk/ (what `make proto` runs)
    python tools/gen_protos.py --out DIR  # generate elsewhere (the drift test compares the two)

The proto root is the import root: protos/mlgrid/api/x/v1/y.proto becomes
sdk/mlgrid/api/x/v1/y_pb2.py, imported as mlgrid.api.x.v1.y_pb2, so nothing is rewritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "sdk"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("mlgrid/**/*.proto"))


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    # The mypy-protobuf plugins sit next to this interpreter (the venv's bin/).
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
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
