"""``import mlgrid`` has gRPC do its socket work on the waiting threads (sdk/mlgrid/_grpc_io.py).

Each case runs in a new interpreter (the C core reads its settings once per process) that makes
one call to a local server with gRPC's TCP tracing on: the source files its trace lines name
tell which transport carried the call. ``tcp_posix.cc`` is the iomgr endpoint, reading and
writing on the polling thread; ``endpoint.cc`` is the shim that hands each read and write to the
EventEngine (whose own ``posix_endpoint.cc`` logs only now and then, so it is not the marker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import pytest

from mlgrid import _grpc_io

# With the space before: the file names exactly (not posix_endpoint.cc, say).
INLINE = " tcp_posix.cc:"
EVENT_ENGINE = " endpoint.cc:"

_PROBE = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from concurrent import futures
    {first}
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{{port}}") as channel:
        try:
            channel.unary_unary("/probe.Probe/Call")(b"", timeout=5)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNIMPLEMENTED, err
    server.stop(None)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('GRPC_EXPERIMENTS'))"],
        capture_output=True, text=True, check=True,
    )
    print("RESULT " + json.dumps({{
        "here": os.environ.get("GRPC_EXPERIMENTS"),
        "child": child.stdout.strip(),
    }}))
    """
)


def _probe(first: str, **env: str) -> tuple[dict[str, str | None], str]:
    """(what the process and a child it started saw of GRPC_EXPERIMENTS, gRPC's trace)."""
    ours = ("GRPC_EXPERIMENTS", "GRPC_TRACE", "MLGRID_GRPC_INLINE_IO")
    environ = {k: v for k, v in os.environ.items() if k not in ours}
    environ.update(GRPC_VERBOSITY="debug", GRPC_TRACE="tcp", **env)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(first=first)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), done.stderr


def _transport(trace: str) -> str:
    inline, event_engine = INLINE in trace, EVENT_ENGINE in trace
    assert inline != event_engine, "the trace names neither transport, or both"
    return INLINE if inline else EVENT_ENGINE


# The grpcio installed here is one the setting applies to (outside TESTED_GRPCIO nothing is
# changed, and the cases below that expect the iomgr endpoint would not hold).
IN_RANGE = _grpc_io.tested(_grpc_io.grpcio_version(os.path.dirname(grpc.__file__)))
needs_tested_grpcio = pytest.mark.skipif(
    not IN_RANGE, reason="the installed grpcio is outside TESTED_GRPCIO: measure it, then widen it"
)


@needs_tested_grpcio
def test_importing_mlgrid_first_puts_the_socket_work_on_the_waiting_threads():
    seen, trace = _probe("import mlgrid")
    assert _transport(trace) == INLINE
    # Set only while grpc was imported: neither this process nor its children keep it.
    assert seen == {"here": None, "child": "None"}
    assert "Unknown experiment" not in trace


@needs_tested_grpcio
def test_without_mlgrid_grpc_keeps_its_default():
    # What the setting changes: this grpcio's own default is the EventEngine's endpoint.
    _, trace = _probe("")
    assert _transport(trace) == EVENT_ENGINE


@needs_tested_grpcio
def test_the_setting_turned_off_leaves_grpc_alone():
    seen, trace = _probe("import mlgrid", MLGRID_GRPC_INLINE_IO="false")
    assert _transport(trace) == EVENT_ENGINE
    assert seen["here"] is None


@needs_tested_grpcio
def test_a_grpc_experiments_of_the_users_own_is_kept():
    seen, trace = _probe("import mlgrid", GRPC_EXPERIMENTS="")
    assert _transport(trace) == EVENT_ENGINE
    assert seen == {"here": "", "child": ""}


@needs_tested_grpcio
def test_grpc_imported_before_mlgrid_is_too_late_and_nothing_is_set():
    seen, trace = _probe("import grpc, mlgrid")
    assert _transport(trace) == EVENT_ENGINE
    assert seen["here"] is None


def test_a_bad_setting_names_the_variable():
    environ = {**os.environ, "MLGRID_GRPC_INLINE_IO": "maybe"}
    environ.pop("GRPC_EXPERIMENTS", None)
    done = subprocess.run(
        [sys.executable, "-c", "import mlgrid, grpc"], env=environ, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "MLGRID_GRPC_INLINE_IO='maybe' is not a boolean" in done.stderr


def _with_stand_in_grpc(tmp_path: Path, version: str) -> subprocess.CompletedProcess[str]:
    """``import mlgrid, grpc`` where ``grpc`` is a stand-in of grpcio ``version`` that notes
    the GRPC_EXPERIMENTS its import saw; prints that, then what the process has afterwards."""
    fake = tmp_path / "grpc"
    fake.mkdir()
    (fake / "_grpcio_metadata.py").write_text(f'__version__ = """{version}"""\n')
    (fake / "__init__.py").write_text("import os\nSEEN = os.environ.get('GRPC_EXPERIMENTS')\n")
    environ = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    environ["PYTHONPATH"] = str(tmp_path)
    script = "import os, mlgrid, grpc; print(grpc.SEEN, os.environ.get('GRPC_EXPERIMENTS'))"
    return subprocess.run(
        [sys.executable, "-c", script], env=environ, capture_output=True, text=True, check=True
    )


def test_outside_the_tested_grpcio_range_nothing_is_set(tmp_path: Path):
    # A grpcio newer than any tested: its import sees nothing set (an experiment name it
    # dropped would make it log an error), and nothing is said.
    done = _with_stand_in_grpc(tmp_path, "1.99.0")
    assert done.stdout.split() == ["None", "None"]
    assert done.stderr == ""


def test_inside_the_range_the_setting_is_there_while_grpc_is_imported(tmp_path: Path):
    done = _with_stand_in_grpc(tmp_path, "1.70.1")
    assert done.stdout.split() == [_grpc_io.EXPERIMENTS, "None"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('__version__ = """1.85.4"""\n', (1, 85)),
        ("__version__ = '1.62.0'\n", (1, 62)),
        ("__version__ = 'dev'\n", None),
        ("", None),
    ],
)
def test_the_grpcio_version_is_read_without_importing_it(tmp_path: Path, text, expected):
    (tmp_path / "_grpcio_metadata.py").write_text(text)
    assert _grpc_io.grpcio_version(str(tmp_path)) == expected
    assert _grpc_io.grpcio_version(str(tmp_path / "missing")) is None


def test_the_tested_range():
    assert not _grpc_io.tested((1, 61))
    assert not _grpc_io.tested((1, 86))
    assert not _grpc_io.tested(None)
    assert _grpc_io.tested((1, 70))
