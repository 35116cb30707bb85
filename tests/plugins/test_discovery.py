"""Discovery of the installed example plugin: interfaces, entry points, overrides, failures."""

from __future__ import annotations

import inspect
import warnings

import pytest
from click.testing import CliRunner

import mlgrid.plugins as plugins
from mlgrid.cli.main import cli
from mlgrid.context import abstract as context_abstract
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry, UnknownSchemeError
from mlgrid.plugins.headers import RequestHeaderProvider, RequestHeaderProviderRegistry


def test_the_six_interfaces_are_abstract_classes_exported_from_mlgrid_plugins() -> None:
    names = [
        "AbstractTrackingStore",
        "ArtifactRepository",
        "AbstractRegistryStore",
        "RunContextProvider",
        "RequestHeaderProvider",
        "ProjectBackend",
    ]
    for name in names:
        cls = getattr(plugins, name)
        assert inspect.isabstract(cls), name
        assert name in plugins.__all__
    # One RunContextProvider: the SDK's own, re-exported (plugins subclass the same class).
    assert plugins.RunContextProvider is context_abstract.RunContextProvider
    assert sorted(RequestHeaderProvider.__abstractmethods__) == ["in_context", "request_headers"]


def test_installed_plugin_classes_load_by_scheme() -> None:
    import mlgrid_test_plugin as p

    expected = {
        "tracking_store": ("file-plugin", p.PluginFileStore),
        "artifact_repository": ("file-plugin", p.PluginLocalArtifactRepository),
        "model_registry_store": ("file-plugin", p.PluginRegistrySqlStore),
        "project_backend": ("dummy-backend", p.PluginDummyProjectBackend),
    }
    for group, (scheme, cls) in expected.items():
        registry: SchemeRegistry[object] = SchemeRegistry(ENTRY_POINT_GROUPS[group], group)
        assert scheme in registry.plugin_schemes()
        assert registry.get(scheme) is cls


def test_a_plugin_overrides_the_builtin_of_its_scheme() -> None:
    import mlgrid_test_plugin as p

    class Builtin:
        pass

    registry: SchemeRegistry[object] = SchemeRegistry(
        "mlgrid.artifact_repository", "artifact repository", {"file-plugin": Builtin}
    )
    assert registry.get("file-plugin") is p.PluginLocalArtifactRepository
    # Without discovery (``mlgrid plugin serve`` serves exactly its class) the built-in stays.
    alone: SchemeRegistry[object] = SchemeRegistry(
        "mlgrid.artifact_repository", "x", {"file-plugin": Builtin}, discover=False
    )
    assert alone.get("file-plugin") is Builtin


def test_broken_plugin_is_reported_with_its_name_and_error_and_others_keep_working() -> None:
    registry: SchemeRegistry[object] = SchemeRegistry(
        "mlgrid.tracking_store", "tracking store", {"sqlite": "sqlite3:connect"}
    )
    with pytest.raises(InvalidParameterValue) as raised:
        registry.get("broken-plugin")
    message = str(raised.value)
    assert "broken-plugin" in message
    assert "mlgrid_test_plugin.broken:BrokenStore" in message
    assert "ImportError" in message and "not installed (on purpose)" in message
    assert registry.failures["broken-plugin"].name == "broken-plugin"
    # The rest of the registry is unaffected.
    assert registry.get("file-plugin").__name__ == "PluginFileStore"
    assert registry.get("sqlite").__name__ == "connect"
    failures = registry.check()
    assert [f.name for f in failures] == ["broken-plugin"]


def test_unknown_scheme_lists_the_known_ones() -> None:
    registry: SchemeRegistry[object] = SchemeRegistry(
        "mlgrid.tracking_store", "tracking store", {"sqlite": "sqlite3:connect"}
    )
    with pytest.raises(UnknownSchemeError, match=r"'nope'.*broken-plugin, file-plugin, sqlite"):
        registry.get("nope")


def test_plugin_list_command_shows_loaded_and_broken_plugins() -> None:
    result = CliRunner().invoke(cli, ["plugin", "list"])
    # The broken example plugin makes the command fail, after listing everything.
    assert result.exit_code == 1, result.output
    assert "Error: 2 plugin(s) failed to load" in result.output
    lines = result.output.splitlines()
    assert any(
        "mlgrid.tracking_store  file-plugin = mlgrid_test_plugin.stores:PluginFileStore  ok" in line
        for line in lines
    )
    assert any(
        line.startswith("mlgrid.artifact_repository  broken-plugin")
        and "FAILED: ImportError" in line
        for line in lines
    )
    assert any("mlgrid.request_header_provider  unused" in line and "ok" in line for line in lines)


class _Headers(RequestHeaderProvider):
    def __init__(self, headers: dict[str, str], in_context: bool = True) -> None:
        self._headers = headers
        self._in_context = in_context

    def in_context(self) -> bool:
        return self._in_context

    def request_headers(self) -> dict[str, str]:
        return self._headers


class _Failing(RequestHeaderProvider):
    def in_context(self) -> bool:
        raise RuntimeError("boom")

    def request_headers(self) -> dict[str, str]:
        return {}


def test_header_providers_merge_skip_out_of_context_and_drop_bad_headers() -> None:
    registry = RequestHeaderProviderRegistry()
    registry._plugins_loaded = True  # only the providers registered here
    registry.register(_Headers({"X-Team": "vision", "grpc-timeout": "1S", "x-bad": "caf\u00e9"}))
    registry.register(_Headers({"x-never": "1"}, in_context=False))
    registry.register(_Failing())
    registry.register(_Headers({"x-team": "nlp"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        headers = registry.headers()
    assert headers == {"x-team": "nlp"}
    text = "\n".join(str(w.message) for w in caught)
    assert "'grpc-timeout' is not sent" in text and "reserved" in text
    assert "'x-bad' is not sent" in text and "printable ASCII" in text
    assert "_Failing failed: RuntimeError: boom" in text
