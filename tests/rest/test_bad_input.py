"""Bad input over REST: MLflow's error codes, a clear message, bounded echoes, nothing written."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pytest
from fixtures.stack import Stack

from .helpers import call, error_of, unique

CREATE = "/api/2.0/mlflow/experiments/create"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _invalid(response, *expected: str) -> str:  # type: ignore[no-untyped-def]
    status, code, message = error_of(response)
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE"), (status, code, message)
    for text in expected:
        assert text in message
    return message


def _no_experiment(client: mlflow.MlflowClient, name: str) -> None:
    assert client.get_experiment_by_name(name) is None


def test_malformed_json_writes_nothing(rest_url: str, client: mlflow.MlflowClient) -> None:
    name = unique("malformed")
    response = call(rest_url, "POST", CREATE, raw=f'{{"name": "{name}",'.encode())
    _invalid(response, "request body is not valid JSON", "line 1")
    _no_experiment(client, name)


def test_body_that_is_not_an_object_or_not_utf8(rest_url: str) -> None:
    _invalid(call(rest_url, "POST", CREATE, raw=b'["a list"]'), "expected a JSON object")
    _invalid(call(rest_url, "POST", CREATE, raw=b'{"name": "\xff\xfe"}'), "not UTF-8")


def test_wrong_type_deep_in_a_batch_writes_nothing(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run("0").info.run_id
    payload = {
        "run_id": run_id,
        "params": [{"key": "p", "value": "v"}],
        "metrics": [{"key": "m", "value": "not a number", "timestamp": 1}],
    }
    response = call(rest_url, "POST", "/api/2.0/mlflow/runs/log-batch", payload)
    _invalid(response, "'metrics[0].value'", '"not a number"', "expected a number")
    run = client.get_run(run_id)
    assert run.data.params == {} and run.data.metrics == {}


def test_wrong_enum_name_lists_the_accepted_ones(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run("0").info.run_id
    response = call(
        rest_url, "POST", "/api/2.0/mlflow/runs/update", {"run_id": run_id, "status": "DONE"}
    )
    _invalid(response, "'status'", "RUNNING, SCHEDULED, FINISHED, FAILED, KILLED")
    assert client.get_run(run_id).info.status == "RUNNING"


def test_unknown_fields_are_ignored_as_mlflows_server_ignores_them(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    # MLflow's server parses bodies with protobuf's ignore_unknown_fields, at every depth, and
    # reads query strings by known names only: a newer client's extra fields do no harm.
    name = unique("unknown-field")
    response = call(
        rest_url,
        "POST",
        CREATE,
        {"name": name, "workspace": "w", "tags": [{"key": "k", "value": "v", "extra": 1}]},
    )
    assert response.status_code == 200, response.text
    created = client.get_experiment(response.json()["experiment_id"])
    assert (created.name, created.tags) == (name, {"k": "v"})
    query = call(
        rest_url,
        "GET",
        "/api/2.0/mlflow/experiments/get",
        params={"experiment_id": created.experiment_id, "verbose": "1"},
    )
    assert query.json()["experiment"]["name"] == name


def test_a_misspelled_field_is_ignored_so_a_required_one_is_reported_missing(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    response = call(rest_url, "POST", CREATE, {"nmae": unique("typo")})
    _invalid(response, "Missing value for required parameter 'name'")


def test_json_names_are_read_and_both_spellings_at_once_are_refused(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    name = unique("json-name")
    body = {"name": name, "artifactLocation": "", "tags": [{"key": "k", "value": "v"}]}
    created = call(rest_url, "POST", CREATE, body)
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]
    renamed = call(
        rest_url,
        "POST",
        "/api/2.0/mlflow/experiments/update",
        {"experimentId": experiment_id, "newName": f"{name}-2"},
    )
    assert renamed.status_code == 200, renamed.text
    assert client.get_experiment(experiment_id).name == f"{name}-2"
    both = call(
        rest_url,
        "POST",
        "/api/2.0/mlflow/experiments/update",
        {"experiment_id": experiment_id, "experimentId": "0", "new_name": f"{name}-3"},
    )
    _invalid(both, "'experiment_id' and 'experimentId'", "provide only one of them")
    assert client.get_experiment(experiment_id).name == f"{name}-2"


def test_oversized_body_is_refused_before_it_is_read(
    rest_stack: Stack, client: mlflow.MlflowClient
) -> None:
    host, port = urlsplit(rest_stack.rest_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 17000000\r\n\r\n"
            b'{"name": "never-'
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in head
    assert b'"error_code": "INVALID_PARAMETER_VALUE"' in body
    assert b"larger than the 16777216 bytes allowed" in body
    assert client.search_experiments(filter_string="name LIKE 'never-%'") == []


def test_values_over_mlflows_limits_are_refused_by_the_service(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run("0").info.run_id
    response = call(
        rest_url,
        "POST",
        "/api/2.0/mlflow/runs/set-tag",
        {"run_id": run_id, "key": "k", "value": "v" * 8001},
    )
    message = _invalid(response, "8000")
    assert len(message) < 1000  # the value is not echoed back whole
    assert "k" not in client.get_run(run_id).data.tags


def test_error_messages_do_not_echo_unbounded_input(rest_url: str) -> None:
    response = call(rest_url, "POST", CREATE, {"name": ["y" * 50_000]})
    assert len(_invalid(response, "for parameter 'name'")) < 1000


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/escape.txt",
        "%252e%252e/%252e%252e/escape.txt",
        "a/%2e%2e/%2e%2e/%2e%2e/escape.txt",
        "..%5c..%5cescape.txt",
        "%2Fetc/escape.txt",
        "nul%00.txt",
    ],
)
def test_traversal_in_artifact_paths_is_refused(
    rest_url: str, rest_stack: Stack, path: str
) -> None:
    root = Path(urlsplit(rest_stack.artifact_root).path)
    for method, raw in (("PUT", b"evil"), ("GET", None), ("DELETE", None)):
        response = call(rest_url, method, f"{ARTIFACTS}/{path}", raw=raw)
        _invalid(response)
    assert not list(root.parent.rglob("escape.txt"))
    listed = call(rest_url, "GET", ARTIFACTS, params={"path": "../.."})
    _invalid(listed, "'..'")


def test_hostile_artifact_location_is_refused(rest_url: str, client: mlflow.MlflowClient) -> None:
    for location in (
        "mlflow-artifacts:/../../etc",
        "mlflow-artifacts:/%2e%2e/%2e%2e/etc",
        "mlflow-artifacts:/a\x00b",
    ):
        name = unique("hostile-location")
        _invalid(
            call(rest_url, "POST", CREATE, {"name": name, "artifact_location": location}),
            "artifact_location",
        )
        _no_experiment(client, name)


def test_hostile_model_version_sources_are_refused(
    rest_url: str, client: mlflow.MlflowClient
) -> None:
    run = client.create_run(client.create_experiment(unique("hostile-source")))
    name = unique("hostile-model")
    client.create_registered_model(name)
    for source in (
        "/etc/passwd",
        "file:///etc",
        f"{run.info.artifact_uri}/../../../../etc",
        "mlflow-artifacts:/%2e%2e/%2e%2e/etc",
    ):
        response = call(
            rest_url,
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            {"name": name, "source": source, "run_id": run.info.run_id},
        )
        _invalid(response, "source")
    assert client.search_model_versions(f"name = '{name}'") == []


def test_wrong_method_unknown_path_and_unserved_endpoint(rest_url: str) -> None:
    wrong = call(rest_url, "DELETE", "/api/2.0/mlflow/runs/get")
    assert wrong.status_code == 405
    assert "allowed: GET" in wrong.json()["message"]
    missing = call(rest_url, "GET", "/api/2.0/mlflow/no-such-thing")
    assert error_of(missing)[:2] == (404, "ENDPOINT_NOT_FOUND")
    unserved = call(rest_url, "POST", "/api/3.0/mlflow/scorers/register", {"name": "s"})
    status, code, message = error_of(unserved)
    assert (status, code) == (501, "NOT_IMPLEMENTED")
    assert "docs/mlflow-endpoints.md" in message


def test_bad_content_length_ends_the_connection(rest_stack: Stack) -> None:
    host, port = urlsplit(rest_stack.rest_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n"
        )
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"is not a number" in answer
