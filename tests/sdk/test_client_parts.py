"""The client's composed parts: each works from a transport alone, and ``Client`` exposes every
public method of every part under the same name, so MlflowClient's flat API stays whole."""

from __future__ import annotations

import inspect
import uuid
from pathlib import Path

import pytest

from mlgrid.artifacts.client import ArtifactsClient
from mlgrid.client import Client
from mlgrid.delegation import Delegated
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.logged_models_client import LoggedModelsClient
from mlgrid.registry.client import RegistryClient

PARTS = {
    "artifacts": ArtifactsClient,
    "registry": RegistryClient,
    "logged_models": LoggedModelsClient,
}


def _public_methods(cls: type) -> set[str]:
    return {
        name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")
    }


@pytest.mark.parametrize("part", sorted(PARTS))
def test_client_exposes_every_method_of_each_part(part: str) -> None:
    exposed = {
        name
        for name, value in vars(Client).items()
        if isinstance(value, Delegated) and value.part == part
    }
    # run_artifact_uri stays on the part: it is the part's cache, not an MlflowClient method.
    assert exposed == _public_methods(PARTS[part]) - {"run_artifact_uri"}
    for name in exposed:  # help(Client.<name>) shows the part's documentation
        assert vars(Client)[name].__doc__ == getattr(PARTS[part], name).__doc__


def test_a_delegated_name_must_match_the_parts_method() -> None:
    # Python 3.11 wraps an error raised by __set_name__ in a RuntimeError; 3.12 does not.
    with pytest.raises((TypeError, RuntimeError)) as raised:

        class Wrong:
            get_model = Delegated("registry", RegistryClient.get_registered_model)

    error = raised.value.__cause__ or raised.value
    assert str(error) == "Wrong.get_model delegates to registry.get_registered_model"


def test_the_registry_part_works_alone_on_the_clients_transport(uri: str) -> None:
    client = Client(uri)
    registry = RegistryClient(client._transport)  # a part needs nothing but a transport
    name = f"model-{uuid.uuid4().hex[:8]}"
    registry.create_registered_model(name, tags={"team": "a"}, description="alone")
    # what the part wrote is what the whole client reads
    model = client.get_registered_model(name)
    assert (model.name, model.description, model.tags) == (name, "alone", {"team": "a"})
    assert client.registry.get_registered_model(name).name == name


def test_the_artifacts_part_asks_for_a_runs_root_once(uri: str, tmp_path: Path) -> None:
    client = Client(uri)
    run = client.create_run(client.create_experiment(f"parts-{uuid.uuid4().hex[:8]}"))
    asked: list[str] = []

    def root_of(run_id: str) -> str:
        asked.append(run_id)
        return client.get_run(run_id).info.artifact_uri

    artifacts = ArtifactsClient(client._transport, root_of)
    artifacts.log_text(run.info.run_id, "hello", "notes/a.txt")
    artifacts.log_text(run.info.run_id, "again", "notes/b.txt")
    assert asked == [run.info.run_id]
    assert sorted(f.path for f in client.list_artifacts(run.info.run_id, "notes")) == [
        "notes/a.txt",
        "notes/b.txt",
    ]
    with pytest.raises(InvalidParameterValue, match="run_id '' is not allowed"):
        artifacts.run_artifact_uri("")
