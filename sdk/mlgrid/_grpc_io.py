"""gRPC's socket work on the threads that wait for it: one thread hop less per message.

Since grpcio 1.6x, gRPC's C core hands every socket read and write of a channel or a listener to
its EventEngine's own thread pool, which then wakes the thread waiting on the completion queue.
With the ``event_engine_client`` and ``event_engine_listener`` experiments turned off, the
transport's reads and writes run on the thread that polls the completion queue instead (gRPC's
iomgr transport, what it used before). For mlgrid's traffic, small messages one after another,
that hop is a large part of a call (measured on grpcio 1.85, 2 cores, docs/benchmarks.md): a
bare pipelined round trip cost 0.36-0.40 ms of CPU instead of 0.44-0.54 ms, and a durable
``log_metric`` from one writer 0.78-0.82 ms instead of 0.93-0.96 (wall time likewise).

The C core reads ``GRPC_EXPERIMENTS`` once, when ``grpc`` is first imported. So
:func:`install` (run by ``import mlgrid``) only watches for that import: the variable is set for
the duration of that import and removed right after, so nothing else sees it and child
processes do not inherit it. Nothing is changed when:

- ``MLGRID_GRPC_INLINE_IO=false``;
- ``GRPC_EXPERIMENTS`` is already set (the user's choice stands);
- ``grpc`` was imported before mlgrid (too late: the C core has read its settings);
- the installed grpcio is outside the range these experiment names were tested on
  (:data:`TESTED_GRPCIO`): an unknown name would make gRPC log an error at import.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

EXPERIMENTS = "-event_engine_client,-event_engine_listener"
#: (major, minor) of the oldest and newest grpcio these experiments were measured and tested on
#: (`make compat` runs the oldest; the dev install the newest).
TESTED_GRPCIO = ((1, 62), (1, 85))
_VARIABLE = "GRPC_EXPERIMENTS"


def grpcio_version(package_dir: str) -> tuple[int, int] | None:
    """(major, minor) of the grpcio in ``package_dir``, read from its metadata module without
    importing it; None when it cannot be read."""
    try:
        with open(os.path.join(package_dir, "_grpcio_metadata.py"), encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return None
    # __version__ = """1.85.4"""
    _, found, rest = text.partition("__version__")
    parts = rest.strip(" =\"'\n").split(".")
    try:
        return (int(parts[0]), int(parts[1])) if found and len(parts) > 1 else None
    except ValueError:
        return None


def tested(version: tuple[int, int] | None) -> bool:
    """Whether grpcio ``version`` (from :func:`grpcio_version`) is in :data:`TESTED_GRPCIO`."""
    return version is not None and TESTED_GRPCIO[0] <= version <= TESTED_GRPCIO[1]


# The two classes below are plain ones, not importlib.abc's: the import system only calls their
# methods, and importing importlib.abc alone cost 7 ms of `import mlgrid`, which the embedded
# mode's short scripts pay.


class _RestoringLoader:
    """grpc's own loader, and the variable removed once the package has run."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._loader.exec_module(module)
        finally:
            _remove_ours()


def _remove_ours() -> None:
    if os.environ.get(_VARIABLE) == EXPERIMENTS:
        del os.environ[_VARIABLE]


class _FirstGrpcImport:
    """Sets the variable for the first ``import grpc`` of the process (then leaves
    ``sys.meta_path``)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname != "grpc":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one import only; and no recursion just below
        spec = importlib.util.find_spec("grpc")
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return spec
        if _VARIABLE in os.environ or not tested(
            grpcio_version(spec.submodule_search_locations[0])
        ):
            return spec
        from mlgrid import environment as env  # here: only once grpc is actually imported

        if not env.MLGRID_GRPC_INLINE_IO.get():
            return spec
        os.environ[_VARIABLE] = EXPERIMENTS
        spec.loader = _RestoringLoader(spec.loader)  # type: ignore[assignment]  # duck-typed
        return spec


def install() -> None:
    """Watches for the process's first ``import grpc`` (nothing when it has happened)."""
    if "grpc" in sys.modules or any(isinstance(f, _FirstGrpcImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _FirstGrpcImport())
