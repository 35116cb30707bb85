"""Run context providers: built-ins, plugins through entry points, broken plugins reported."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from mlgrid.context import RunContextProviderRegistry, get_registry, resolve_tags
from mlgrid.context.default import DefaultRunContext


def _install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution (dist-info with entry points) on sys.path."""
    (site / "ctx_plugin.py").write_text(
        "from mlgrid.context import RunContextProvider\n"
        "class TeamContext(RunContextProvider):\n"
        "    def in_context(self):\n"
        "        return True\n"
        "    def tags(self):\n"
        "        return {'team': 'vision', 'mlflow.user': 'plugin-user'}\n"
        "class Idle(RunContextProvider):\n"
        "    def in_context(self):\n"
        "        return False\n"
        "    def tags(self):\n"
        "        raise AssertionError('not in context: never asked')\n"
        "class Broken(RunContextProvider):\n"
        "    def in_context(self):\n"
        "        return True\n"
        "    def tags(self):\n"
        "        raise RuntimeError('no network')\n"
    )
    dist = site / "ctx_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ctx-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[mlgrid.run_context_provider]\n"
        "team = ctx_plugin:TeamContext\n"
        "idle = ctx_plugin:Idle\n"
        "broken = ctx_plugin:Broken\n"
        "missing = ctx_plugin_not_installed:Provider\n"
    )
    monkeypatch.syspath_prepend(str(site))


def test_plugins_add_tags_and_broken_ones_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(tmp_path, monkeypatch)
    registry = RunContextProviderRegistry([DefaultRunContext()])
    with pytest.warns(RuntimeWarning) as caught:
        tags = registry.context_tags()
    assert tags["team"] == "vision"
    assert tags["mlflow.user"] == "plugin-user"  # plugins come after built-ins
    messages = " | ".join(str(w.message) for w in caught)
    assert "missing (ctx_plugin_not_installed:Provider)" in messages
    assert "ModuleNotFoundError" in messages
    assert "Broken failed: RuntimeError: no network" in messages
    assert registry.failures == [
        "missing (ctx_plugin_not_installed:Provider): ModuleNotFoundError: "
        "No module named 'ctx_plugin_not_installed'"
    ]


def test_plugins_load_lazily() -> None:
    registry = RunContextProviderRegistry([])
    assert registry._plugins_loaded is False
    assert registry.context_tags() == {}
    assert registry._plugins_loaded is True


def test_explicit_tags_win_over_context() -> None:
    tags = resolve_tags({"mlflow.source.type": "JOB", "extra": 1})
    assert tags["mlflow.source.type"] == "JOB"
    assert tags["extra"] == "1"
    assert tags["mlflow.user"] == getpass.getuser()


def test_context_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGRID_DISABLE_RUN_CONTEXT", "true")
    assert resolve_tags({"k": "v"}) == {"k": "v"}


def test_default_registry_has_the_builtins() -> None:
    names = [type(p).__name__ for p in get_registry()]
    assert names[:2] == ["DefaultRunContext", "GitRunContext"]
