"""``mlgrid models serve`` and ``predict``: MLflow's scoring protocol, its flags and errors, on
a real server process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest
from model_servers import MLGRID, Served, quiet_env, served

import mlgrid
import mlgrid.pyfunc
from mlgrid.models import infer_signature

# The server processes cannot import this test module: pickle its classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TABLE = pd.DataFrame({"x": [1.0, 2.0], "n": [1, 2], "tag": ["a", "b"]})


class Scorer(mlgrid.pyfunc.PythonModel):
    """x * n (+ bonus param); sleeps for the 'sleep' param (for the timeout test)."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        params = params or {}
        if params.get("sleep"):
            time.sleep(float(params["sleep"]))
        if params.get("fail"):
            raise ValueError("the model cannot score this")
        return model_input["x"] * model_input["n"] + params.get("bonus", 0.0)


class Echo(mlgrid.pyfunc.PythonModel):
    """Returns its input (no signature: shows what the server hands the model)."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scorer") / "model"
    signature = infer_signature(TABLE, params={"bonus": 0.0, "sleep": 0.0, "fail": False})
    mlgrid.pyfunc.save_model(path, python_model=Scorer(), signature=signature)
    return path


@pytest.fixture(scope="module")
def server(scorer_dir: Path) -> Iterator[Served]:
    with served(str(scorer_dir), "-t", "2", "--max-body-mib", "0.01") as running:
        yield running


def test_ping_health_and_version(server: Served) -> None:
    assert server.request("GET", "/ping")[0] == 200
    assert server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/version") == (200, mlgrid.__version__.encode())


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["x", "n", "tag"], "data": [[1.0, 1, "a"], [2.0, 2, "b"]]}},
        {"dataframe_records": [{"x": 1.0, "n": 1, "tag": "a"}, {"x": 2, "n": 2, "tag": "b"}]},
        {"instances": [{"x": 1.0, "n": 1, "tag": "a"}, {"x": 2.0, "n": 2, "tag": "b"}]},
        {"inputs": {"x": [1.0, 2.0], "n": [1, 2], "tag": ["a", "b"]}},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_json_formats_score(server: Served, payload: dict) -> None:
    assert server.invoke(payload) == (200, {"predictions": [1.0, 4.0]})


def test_csv_scores(server: Served) -> None:
    status, answer = server.invoke("x,n,tag\n1.5,2,a\n", content_type="text/csv")
    assert (status, answer) == (200, {"predictions": [3.0]})


def test_params_reach_the_model(server: Served) -> None:
    payload = {"inputs": {"x": [1.0], "n": [1], "tag": ["a"]}, "params": {"bonus": 10.0}}
    assert server.invoke(payload) == (200, {"predictions": [11.0]})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ('{"inputs": [1, 2', "application/json", 400, "the request body is not valid JSON"),
        ('{"rows": []}', "application/json", 400, "exactly one of dataframe_split"),
        ('{"inputs": {"x": [1.0], "n": [1], "tag": ["a"], "age": [3]}}', "application/json",
         400, "unknown column 'age'"),
        ('{"inputs": {"x": ["one"], "n": [1], "tag": ["a"]}}', "application/json",
         400, "column 'x': expected double, got string values"),
        ('{"inputs": {"x": [1.0], "tag": ["a"]}}', "application/json",
         400, "missing column 'n' (long)"),
        ("x,n,tag\n1.0,half,a\n", "text/csv", 400, "column 'n': expected long"),
        ("x", "text/plain", 415, "content type 'text/plain' is not supported"),
    ],
    ids=["malformed-json", "no-format", "unknown-column", "wrong-type", "missing-column",
         "csv-wrong-type", "content-type"],
)  # fmt: skip
def test_bad_input_gets_mlflows_error_shape_and_server_keeps_serving(
    server: Served, body: str, content_type: str, status: int, message: str
) -> None:
    got_status, answer = server.invoke(body, content_type)
    assert got_status == status
    assert answer["error_code"] == "BAD_REQUEST"
    assert message in answer["message"]
    assert server.invoke({"inputs": {"x": [2.0], "n": [3], "tag": ["a"]}}) == (
        200,
        {"predictions": [6.0]},
    )


def test_body_over_the_limit_is_413(server: Served) -> None:
    rows = [[1.0, 1, "a"]] * 2000  # about 28 KB against a 10 KiB limit
    status, answer = server.invoke(
        {"dataframe_split": {"columns": ["x", "n", "tag"], "data": rows}}
    )
    assert status == 413
    assert answer == {
        "error_code": "BAD_REQUEST",
        "message": "the request body is larger than the limit of 10485 bytes",
    }
    assert server.request("GET", "/ping")[0] == 200


def test_model_errors_and_unknown_paths(server: Served) -> None:
    payload = {"inputs": {"x": [1.0], "n": [1], "tag": ["a"]}, "params": {"fail": True}}
    status, answer = server.invoke(payload)
    assert status == 400
    assert answer["message"] == "the model raised ValueError: the model cannot score this"
    status, raw = server.request("GET", "/score")
    assert status == 404 and json.loads(raw)["error_code"] == "ENDPOINT_NOT_FOUND"
    assert server.request("GET", "/invocations")[0] == 405


def test_slow_prediction_times_out_and_worker_keeps_serving(server: Served) -> None:
    payload = {"inputs": {"x": [1.0], "n": [1], "tag": ["a"]}, "params": {"sleep": 30.0}}
    started = time.monotonic()
    status, answer = server.invoke(payload)
    assert status == 503
    assert "longer than the 2 s timeout" in answer["message"]
    assert time.monotonic() - started < 15
    assert server.invoke({"inputs": {"x": [1.0], "n": [5], "tag": ["a"]}})[0] == 200


def test_several_workers_share_the_port(scorer_dir: Path) -> None:
    with served(str(scorer_dir), "-w", "2", "--host", "127.0.0.1") as running:
        answers = {
            running.invoke({"inputs": {"x": [1.0], "n": [i], "tag": ["a"]}})[1]["predictions"][0]
            for i in range(6)
        }
        assert answers == {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}


def test_without_signature_the_model_gets_mlflows_types(tmp_path: Path) -> None:
    mlgrid.pyfunc.save_model(tmp_path / "echo", python_model=Echo())
    with served(str(tmp_path / "echo")) as running:
        split = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"]]}}
        assert running.invoke(split) == (200, {"predictions": [{"a": 1, "b": "x"}]})
        assert running.invoke({"instances": [[1, 2], [3, 4]]}) == (
            200,
            {"predictions": [[1, 2], [3, 4]]},
        )
        assert running.invoke({"inputs": {"t": [1.5]}}) == (200, {"predictions": {"t": [1.5]}})


def test_mlflow_sklearn_model_serves(mlflow_sklearn_dir: Path, iris_like: pd.DataFrame) -> None:
    with served(str(mlflow_sklearn_dir)) as running:
        rows = iris_like.head(3)
        split = {"dataframe_split": rows.to_dict(orient="split")}
        status, answer = running.invoke(split)
        assert status == 200 and len(answer["predictions"]) == 3
        status, answer = running.invoke({"dataframe_records": [{"sepal_length": "tall"}]})
        assert status == 400 and "unknown column" not in answer["message"]


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [MLGRID, "models", "serve", "-m", str(tmp_path / "nothing"), "-p", "0"],
        capture_output=True,
        text=True,
        env=quiet_env(),
    )
    assert done.returncode == 1
    assert f"{str(tmp_path / 'nothing')!r} does not exist" in done.stderr


def test_predict_command_json_csv_and_output_file(scorer_dir: Path, tmp_path: Path) -> None:
    json_input = tmp_path / "in.json"
    json_input.write_text(json.dumps({"dataframe_records": [{"x": 2.0, "n": 4, "tag": "a"}]}))
    done = subprocess.run(
        [MLGRID, "models", "predict", "-m", str(scorer_dir), "-i", str(json_input)],
        capture_output=True,
        text=True,
        env=quiet_env(),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"predictions": [8.0]}
    csv_input = tmp_path / "in.csv"
    csv_input.write_text("x,n,tag\n1.0,3,a\n2.0,1,b\n")
    out = tmp_path / "out.json"
    command = [MLGRID, "models", "predict", "-m", str(scorer_dir), "-i", str(csv_input)]
    done = subprocess.run(
        [*command, "-t", "csv", "-o", str(out)], capture_output=True, text=True, env=quiet_env()
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"predictions": [3.0, 2.0]}


def test_conda_without_conda_is_a_clear_error(scorer_dir: Path, tmp_path: Path) -> None:
    env = quiet_env(PATH=str(Path(MLGRID).parent), MLGRID_ENV_ROOT=str(tmp_path))
    env.pop("MLGRID_CONDA_HOME", None)
    done = subprocess.run(
        [MLGRID, "models", "serve", "-m", str(scorer_dir), "--env-manager", "conda"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert "conda is needed but no conda is installed" in done.stderr


def test_virtualenv_env_manager_serves_from_the_models_own_environment(
    scorer_dir: Path, tmp_path: Path
) -> None:
    # A venv from the model's python_env.yaml and requirements.txt, with the running mlgrid.
    env = quiet_env(MLGRID_ENV_ROOT=str(tmp_path / "envs"))
    with served(str(scorer_dir), "--env-manager", "virtualenv", env=env) as running:
        assert running.invoke({"inputs": {"x": [2.0], "n": [2], "tag": ["a"]}}) == (
            200,
            {"predictions": [4.0]},
        )
    built = list((tmp_path / "envs").glob("model-venv-*"))
    assert len(built) == 1
    python = built[0] / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import mlgrid, sys; print(mlgrid.__file__)"],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.startswith(str(built[0]))  # its own copy, not this venv's
