"""``mlgrid plugin serve`` argument checks: which contract a class gets, and what is refused."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlgrid.cli.main import cli
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.plugin_host.host import (
    build_plugin_app,
    check_scheme,
    detect_service,
    load_class,
)


def test_the_contract_follows_the_base_class() -> None:
    import mlgrid_test_plugin as p

    assert detect_service(p.PluginFileStore) == "tracking"
    assert detect_service(p.PluginLocalArtifactRepository) == "artifacts"
    assert detect_service(p.PluginRegistrySqlStore) == "registry"
    assert detect_service(p.PluginDummyProjectBackend) == "projects"
    assert detect_service(p.PluginFileStore, "tracking") == "tracking"


def test_a_service_the_class_does_not_implement_is_refused() -> None:
    import mlgrid_test_plugin as p

    with pytest.raises(InvalidParameterValue, match=r"does not subclass .*ArtifactRepository"):
        detect_service(p.PluginFileStore, "artifacts")
    with pytest.raises(InvalidParameterValue, match="is not one of tracking, artifacts"):
        detect_service(p.PluginFileStore, "gateway")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mlgrid_test_plugin", "must be given as 'module:Class'"),
        ("no_such_module_xyz:Store", "failed to import: ModuleNotFoundError"),
        ("mlgrid_test_plugin:Missing", "has no attribute 'Missing'"),
        ("mlgrid_test_plugin:SCHEME", "is a str, not a class"),
        ("mlgrid_test_plugin.broken:BrokenStore", "ImportError: mlgrid_test_plugin.broken"),
    ],
)
def test_bad_targets_are_refused_naming_them(target: str, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        load_class(target)


@pytest.mark.parametrize("scheme", ["", "1abc", "a b", "file/plugin", "x:y"])
def test_bad_schemes_are_refused(scheme: str) -> None:
    with pytest.raises(InvalidParameterValue, match="must start with a letter"):
        check_scheme(scheme)


def test_store_uri_must_have_the_plugin_scheme() -> None:
    import mlgrid_test_plugin as p

    with pytest.raises(InvalidParameterValue, match="does not have the plugin's scheme"):
        build_plugin_app(p.PluginFileStore, "file-plugin", store_uri="sqlite:///x.db")
    with pytest.raises(InvalidParameterValue, match="not to artifacts plugins"):
        build_plugin_app(
            p.PluginLocalArtifactRepository, "file-plugin", store_uri="file-plugin:///x"
        )


def test_cli_reports_errors_without_a_traceback() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "plugin",
            "serve",
            "mlgrid_test_plugin:PluginFileStore",
            "--scheme",
            "file-plugin",
            "--service",
            "projects",
        ],
    )
    assert result.exit_code != 0
    assert "does not subclass mlgrid.projects.backend.ProjectBackend" in result.output
    assert "Traceback" not in result.output
