"""Client environment: MLGRID_* first, MLflow's MLFLOW_* names as fallback, typed values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlgrid import environment as env
from mlgrid import tracking_uri
from mlgrid.exceptions import InvalidParameterValue


@pytest.mark.parametrize(
    "variable",
    [
        env.MLGRID_TRACKING_URI,
        env.MLGRID_REGISTRY_URI,
        env.MLGRID_EXPERIMENT_NAME,
        env.MLGRID_EXPERIMENT_ID,
        env.MLGRID_RUN_ID,
        env.MLGRID_TRACKING_TOKEN,
        env.MLGRID_TRACKING_USERNAME,
        env.MLGRID_TRACKING_PASSWORD,
    ],
    ids=lambda v: v.name,
)
def test_mlflow_name_is_the_fallback(
    variable: env.EnvironmentVariable[str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert variable.fallback == variable.name.replace("MLGRID_", "MLFLOW_")
    monkeypatch.setenv(variable.fallback, "from-mlflow")
    assert variable.get() == "from-mlflow"
    monkeypatch.setenv(variable.name, "from-mlgrid")
    assert variable.get() == "from-mlgrid"


def test_async_logging_reads_mlflows_enable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.MLGRID_ASYNC_LOGGING.get() is False
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    assert env.MLGRID_ASYNC_LOGGING.get() is True
    monkeypatch.setenv("MLGRID_ASYNC_LOGGING", "0")
    assert env.MLGRID_ASYNC_LOGGING.get() is False


def test_bad_value_names_the_variable_and_what_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "perhaps")
    with pytest.raises(InvalidParameterValue) as caught:
        env.MLGRID_ASYNC_LOGGING.get()
    message = str(caught.value)
    assert "MLFLOW_ENABLE_ASYNC_LOGGING='perhaps'" in message
    assert "true" in message and "false" in message


def test_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGRID_ASYNC_LOGGING_QUEUE_SIZE", "-3")
    with pytest.raises(
        InvalidParameterValue, match=r"MLGRID_ASYNC_LOGGING_QUEUE_SIZE='-3'.*positive"
    ):
        env.MLGRID_ASYNC_LOGGING_QUEUE_SIZE.get()


def test_unset_tracking_uri_is_mlgrid_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert tracking_uri.get_tracking_uri() == f"sqlite:///{tmp_path}/mlgrid.db"
    assert not tracking_uri.is_tracking_uri_set()


def test_tracking_uri_from_mlflow_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "grpc://127.0.0.1:1234")
    assert tracking_uri.get_tracking_uri() == "grpc://127.0.0.1:1234"
    monkeypatch.setenv("MLGRID_TRACKING_URI", "grpc://127.0.0.1:5678")
    assert tracking_uri.get_tracking_uri() == "grpc://127.0.0.1:5678"


def test_set_tracking_uri_wins_and_is_exported_to_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "grpc://127.0.0.1:1234")
    tracking_uri.set_tracking_uri("sqlite:///relative.db")
    expected = f"sqlite:///{tmp_path}/relative.db"
    assert tracking_uri.get_tracking_uri() == expected
    assert env.MLGRID_TRACKING_URI.get() == expected


def test_registry_uri_follows_the_tracking_uri_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    tracking_uri.set_tracking_uri("grpc://127.0.0.1:1234")
    assert tracking_uri.get_registry_uri() == "grpc://127.0.0.1:1234"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "grpc://127.0.0.1:999")
    assert tracking_uri.get_registry_uri() == "grpc://127.0.0.1:999"
    tracking_uri.set_registry_uri("grpc://127.0.0.1:4321")
    assert tracking_uri.get_registry_uri() == "grpc://127.0.0.1:4321"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "must not be empty"),
        ("mlruns", "has no scheme"),
        ("grpc://localhost", "needs a host and a port"),
        ("http://localhost:5000", "mlgrid talks gRPC: use grpc://host:port"),
    ],
)
def test_malformed_tracking_uris_are_refused_clearly(uri: str, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        tracking_uri.set_tracking_uri(uri)


def test_every_variable_is_declared_once() -> None:
    names = [v.name for v in env.ALL]
    assert len(names) == len(set(names))
    assert all(name.startswith("MLGRID_") for name in names)


def test_nothing_else_reads_mlgrid_or_mlflow_variables() -> None:
    # Every setting has one name, parser and default: code asks mlgrid.environment, never
    # os.environ, for MLGRID_*/MLFLOW_* (copying the environment for a child is fine).
    root = Path(__file__).resolve().parents[2]
    # By literal name, or by a constant holding one (``SOMETHING_ENV``).
    direct = re.compile(r"(os\.environ|os\.getenv)[^\n]*(MLGRID_|MLFLOW_|_ENV\b)")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for base in (root / "sdk" / "mlgrid", root / "services")
        for path in sorted(base.rglob("*.py"))
        if "api" not in path.relative_to(base).parts[:1] and path.name != "environment.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []


def test_values_follow_every_change_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are read on each use (credentials rotated in the environment apply at once),
    whichever way the environment changes: set, changed, removed, replaced by another mapping."""
    token = env.MLGRID_TRACKING_TOKEN
    monkeypatch.delenv("MLGRID_TRACKING_TOKEN", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    assert token.get() is None and token.source() is None and not token.is_set
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "jéton-1")  # non-ASCII survives the round trip
    assert (token.get(), token.source()) == ("jéton-1", "MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLGRID_TRACKING_TOKEN", "rotated")
    assert (token.get(), token.get_raw(), token.source()) == (
        "rotated",
        "rotated",
        "MLGRID_TRACKING_TOKEN",
    )
    monkeypatch.delenv("MLGRID_TRACKING_TOKEN")
    assert token.get() == "jéton-1"
    monkeypatch.setattr("os.environ", {"MLGRID_TRACKING_TOKEN": "from-a-plain-dict"})
    assert token.get() == "from-a-plain-dict"
    assert env.MLGRID_WORKSPACE.get() is None


def test_every_read_sees_the_environment_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    token = env.MLGRID_TRACKING_TOKEN
    monkeypatch.delenv(token.name, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    assert token.get() is None and token.source() is None
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "mlflow-é")  # set after a first read
    assert (token.get(), token.source()) == ("mlflow-é", "MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv(token.name, "rotated")
    assert (token.get(), token.source()) == ("rotated", token.name)
    monkeypatch.delenv(token.name)
    assert token.get() == "mlflow-é"
    # A plain mapping put in place of os.environ (as some test harnesses do) is read too.
    monkeypatch.setattr("os.environ", {token.name: "from-a-dict"})
    assert (token.get(), token.source()) == ("from-a-dict", token.name)
    assert env.MLGRID_WORKSPACE.get() is None
