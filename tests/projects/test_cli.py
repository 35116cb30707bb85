"""``mlgrid run``: the command line, run as a real process against the stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mlgrid.client import Client

from .helpers import write


def mlgrid_run(stack_uri: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGRID_TRACKING_URI": stack_uri}
    return subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def project(tmp_path: Path) -> Path:
    return write(
        tmp_path / "proj",
        {
            "MLproject": """
                name: cli
                entry_points:
                  main:
                    parameters: {alpha: float, name: {type: string, default: world}}
                    command: "python hello.py {alpha} {name}"
                  fail:
                    command: "python -c 'import sys; sys.exit(4)'"
            """,
            "hello.py": "import sys\nprint('hello', *sys.argv[1:])\n",
        },
    )


def test_run_follows_output_and_logs_the_run(grpc_stack, tmp_path: Path) -> None:
    proj = project(tmp_path)
    result = mlgrid_run(
        grpc_stack.tracking_uri,
        "proj",
        "-e",
        "main",
        "-P",
        "alpha=0.5",
        "-P",
        "name=a b",
        "-P",
        "extra=1",
        "--experiment-name",
        "cli-experiment",
        "--run-name",
        "from-cli",
        "-c",
        '{"unused": true}',
        "--env-manager",
        "local",
        cwd=proj.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello 0.5 a b --extra 1\n"
    run_id = re.search(r"Run (\w+) FINISHED", result.stderr)
    assert run_id is not None
    run = Client(grpc_stack.tracking_uri).get_run(run_id.group(1))
    assert run.info.run_name == "from-cli"
    assert run.data.params == {"alpha": "0.5", "name": "a b", "extra": "1"}


def test_failures_and_bad_input_set_the_exit_code(grpc_stack, tmp_path: Path) -> None:
    proj = project(tmp_path)
    failed = mlgrid_run(grpc_stack.tracking_uri, str(proj), "-e", "fail", cwd=tmp_path)
    assert failed.returncode == 1
    assert "failed: exit code 4" in failed.stderr
    missing = mlgrid_run(grpc_stack.tracking_uri, str(proj), cwd=tmp_path)
    assert missing.returncode == 2
    assert "needs parameter(s) alpha" in missing.stderr
    bad_config = mlgrid_run(grpc_stack.tracking_uri, str(proj), "-c", "{nope", cwd=tmp_path)
    assert bad_config.returncode == 2
    assert "backend_config must be a JSON object or a JSON file" in bad_config.stderr


def test_no_wait_returns_the_run_id(grpc_stack, tmp_path: Path) -> None:
    proj = project(tmp_path)
    result = mlgrid_run(
        grpc_stack.tracking_uri, str(proj), "-P", "alpha=1", "--no-wait", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    match = re.match(r"Run (\w+) submitted \((SCHEDULED|RUNNING|FINISHED)\)\.", result.stdout)
    assert match is not None
    from mlgrid.projects.submitted import RemoteSubmittedRun
    from mlgrid.transport import Transport

    transport = Transport(grpc_stack.tracking_uri)
    try:
        assert RemoteSubmittedRun(transport, "local", match.group(1)).wait(timeout=60)
    finally:
        transport.close()


def test_backend_config_from_a_file_or_inline(tmp_path: Path) -> None:
    from mlgrid.projects import _backend_config_json

    config_file = tmp_path / "backend.json"
    config_file.write_text('{"kube-context": "ctx", "repository-uri": "r"}')
    assert json.loads(_backend_config_json(str(config_file))) == {
        "kube-context": "ctx",
        "repository-uri": "r",
    }
    assert json.loads(_backend_config_json('{"a": 1}')) == {"a": 1}
    assert _backend_config_json(None) == ""


def test_interrupting_a_synchronous_run_cancels_it(grpc_stack, tmp_path: Path) -> None:
    import signal

    proj = write(
        tmp_path / "slow",
        {"wait.py": "import time\nprint('waiting', flush=True)\ntime.sleep(300)\n"},
    )
    env = {**os.environ, "MLGRID_TRACKING_URI": grpc_stack.tracking_uri}
    cli = subprocess.Popen(
        [sys.executable, "-m", "mlgrid.cli.main", "run", str(proj), "-e", "wait.py"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == "waiting\n"
    cli.send_signal(signal.SIGINT)
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode != 0
    match = re.search(r"Run \(ID '(\w+)'\) interrupted, cancelling it", stderr)
    assert match is not None, stderr
    assert Client(grpc_stack.tracking_uri).get_run(match.group(1)).info.status == "KILLED"
