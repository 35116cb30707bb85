"""The kubernetes backend's configuration: MLflow's keys, the service's defaults, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.projects.kubernetes.config import DEFAULTS_ENV, parse_config

TEMPLATE = "kind: Job\n"


def test_mlflow_keys_with_a_template_path_relative_to_the_callers_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "job.yaml").write_text(TEMPLATE)
    config = parse_config(
        {
            "kube-context": "docker-for-desktop",
            "repository-uri": "username/mlflow-kubernetes-example",
            "kube-job-template-path": "job.yaml",
            "env_manager": None,  # keys the service adds are not the user's mistakes
        },
        base_dir=tmp_path,
    )
    assert config.context == "docker-for-desktop"
    assert config.repository_uri == "username/mlflow-kubernetes-example"
    assert config.job_template == TEMPLATE
    assert config.image_pull_secrets == ()


def test_the_template_text_can_be_given_inline() -> None:
    config = parse_config({"repository-uri": "r", "kube-job-template": TEMPLATE})
    assert config.job_template == TEMPLATE and config.context is None


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"kube-job-template": TEMPLATE}, "'repository-uri' is required"),
        ({"repository-uri": "r"}, "'kube-job-template-path'"),
        (
            {"repository-uri": "r", "kube-job-template": TEMPLATE, "kube-contxt": "x"},
            "'kube-contxt'",
        ),
        ({"repository-uri": 5, "kube-job-template": TEMPLATE}, "'repository-uri' must be a string"),
        (
            {"repository-uri": "r", "kube-job-template": TEMPLATE, "image-pull-secrets": [1]},
            "'image-pull-secrets' must be a list",
        ),
    ],
)
def test_a_wrong_configuration_is_refused_naming_the_key(
    config: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_config(config)
    assert named in caught.value.message


def test_an_unreadable_template_path_names_the_key_and_not_the_file_contents(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_config({"repository-uri": "r", "kube-job-template-path": "missing.yaml"}, tmp_path)
    assert "'kube-job-template-path' 'missing.yaml' cannot be read" in caught.value.message
    assert str(tmp_path) not in caught.value.message


def test_the_services_defaults_apply_and_the_users_keys_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "job.yaml").write_text(TEMPLATE)
    defaults = tmp_path / "defaults.json"
    defaults.write_text(
        json.dumps(
            {
                "repository-uri": "registry.internal/mlgrid-projects",
                "kube-job-template-path": str(tmp_path / "job.yaml"),
                "image-pull-secrets": ["regcred"],
            }
        )
    )
    monkeypatch.setenv(DEFAULTS_ENV, str(defaults))
    config = parse_config({})
    assert config.repository_uri == "registry.internal/mlgrid-projects"
    assert config.job_template == TEMPLATE
    assert config.image_pull_secrets == ("regcred",)
    mine = parse_config({"repository-uri": "mine", "kube-job-template": "kind: Job # mine\n"})
    assert mine.repository_uri == "mine" and mine.job_template.endswith("# mine\n")


def test_the_sdk_sends_a_local_template_file_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that a projects service on another machine (a cluster) gets the template itself."""
    from mlgrid.projects import _backend_config_json

    (tmp_path / "job.yaml").write_text(TEMPLATE)
    monkeypatch.chdir(tmp_path)
    sent = json.loads(
        _backend_config_json({"repository-uri": "r", "kube-job-template-path": "job.yaml"})
    )
    assert sent == {"repository-uri": "r", "kube-job-template": TEMPLATE}
    # A path the client cannot read is left for the service (a file on its machine).
    remote = {"repository-uri": "r", "kube-job-template-path": "/etc/mlgrid/job.yaml"}
    assert json.loads(_backend_config_json(remote)) == remote
    assert parse_config(sent).job_template == TEMPLATE
