"""Real scripts, run as subprocesses: ``import mlgrid as mlflow`` runs an MLflow script
unchanged; run context tags (user, source, git) are set; runs left open end at exit."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlgrid import MlflowClient

MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import mlgrid as mlflow
    from mlgrid import MlflowClient

    mlflow.set_experiment(sys.argv[1])
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"l1_ratio": 0.1, "solver": "saga"})
        for step in range(10):
            mlflow.log_metric("rmse", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"r2": 0.75, "mae": 0.2})
        mlflow.set_tag("stage", "dev")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("fold_rmse", 0.3)

    frame = mlflow.search_runs(order_by=["attributes.run_name ASC"])
    assert list(frame["tags.mlflow.runName"]) == ["child", "parent"], frame
    assert frame.loc[1, "params.alpha"] == "0.5"
    assert frame.loc[1, "metrics.rmse"] == 0.1
    runs = mlflow.search_runs(filter_string="metrics.r2 > 0.7", output_format="list")
    assert [r.info.run_id for r in runs] == [parent.info.run_id]
    history = MlflowClient().get_metric_history(parent.info.run_id, "rmse")
    assert [m.step for m in history] == list(range(10))
    print(json.dumps({"parent": parent.info.run_id, "child": child.info.run_id,
                      "uri": mlflow.get_tracking_uri()}))
    """
)


def _run_script(path: Path, args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_mlflow_script_runs_unchanged(
    tracking_uri_for_mode: str,
    unique_name: str,
    tmp_path: Path,
    sdk_env: dict[str, str],
) -> None:
    script = tmp_path / "train.py"
    script.write_text(MLFLOW_SCRIPT)
    sdk_env["MLFLOW_TRACKING_URI"] = tracking_uri_for_mode  # MLflow's name, as a job would set
    out = json.loads(_run_script(script, [unique_name], sdk_env, tmp_path).splitlines()[-1])
    assert out["uri"] == tracking_uri_for_mode

    client = MlflowClient(tracking_uri_for_mode)
    parent = client.get_run(out["parent"])
    child = client.get_run(out["child"])
    assert parent.info.status == child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.params == {"alpha": "0.5", "l1_ratio": "0.1", "solver": "saga"}
    assert parent.data.metrics == {"rmse": 0.1, "r2": 0.75, "mae": 0.2}
    tags = parent.data.tags
    assert tags["mlflow.source.name"] == str(script)
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] == getpass.getuser() == parent.info.user_id
    # tmp_path is not a git checkout: no git tags, and no error either.
    assert not any(key.startswith("mlflow.source.git") for key in tags)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_git_context_tags(embedded_uri: str, tmp_path: Path, sdk_env: dict[str, str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "feature/x")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "T")
    _git(repo, "remote", "add", "origin", "https://example.com/team/models.git")
    script = repo / "job.py"
    script.write_text(
        "import mlgrid\nwith mlgrid.start_run() as run:\n    print(run.info.run_id)\n"
    )
    _git(repo, "add", "job.py")
    _git(repo, "commit", "-q", "-m", "job")
    commit = _git(repo, "rev-parse", "HEAD")
    sdk_env["MLGRID_TRACKING_URI"] = embedded_uri
    run_id = _run_script(script, [], sdk_env, tmp_path).strip()
    tags = MlflowClient(embedded_uri).get_run(run_id).data.tags
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.git.branch"] == "feature/x"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/team/models.git"


def test_console_source_is_named_console(
    embedded_uri: str, tmp_path: Path, sdk_env: dict[str, str]
) -> None:
    sdk_env["MLGRID_TRACKING_URI"] = embedded_uri
    sdk_env["MLGRID_SOURCE_TYPE"] = "project"
    code = "import mlgrid\nwith mlgrid.start_run() as run:\n    print(run.info.run_id)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=sdk_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    tags = MlflowClient(embedded_uri).get_run(done.stdout.strip()).data.tags
    assert tags["mlflow.source.name"] == "<console>"
    assert tags["mlflow.source.type"] == "PROJECT"


OPEN_RUN = "import mlgrid\nmlgrid.start_run()\nprint(mlgrid.active_run().info.run_id, flush=True)\n"


@pytest.mark.parametrize(
    ("ending", "status", "returncode"),
    [("", "FINISHED", 0), ("raise ValueError('boom')\n", "FAILED", 1)],
    ids=["left-open", "crashed"],
)
def test_runs_left_open_are_ended_at_exit(
    ending: str,
    status: str,
    returncode: int,
    embedded_uri: str,
    tmp_path: Path,
    sdk_env: dict[str, str],
) -> None:
    script = tmp_path / "job.py"
    script.write_text(OPEN_RUN + ending)
    sdk_env["MLGRID_TRACKING_URI"] = embedded_uri
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=sdk_env, capture_output=True, text=True
    )
    assert done.returncode == returncode, done.stderr
    run = MlflowClient(embedded_uri).get_run(done.stdout.split()[0])
    assert run.info.status == status
    assert run.info.end_time is not None
