"""Entry points are read in one scan for every group, and a distribution installed later is seen."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from mlgrid.plugins import ENTRY_POINT_GROUPS
from mlgrid.plugins import registry as plugin_registry
from mlgrid.plugins.registry import installed_entry_points


def _install(site: Path, name: str, group: str, entry: str) -> None:
    """A real installed distribution (a dist-info folder with entry points) in ``site``."""
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")


def test_every_group_comes_from_one_scan_of_the_distributions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans = []
    real = importlib.metadata.entry_points

    def counted(**params: object) -> object:
        scans.append(params)
        return real(**params)  # type: ignore[arg-type]

    monkeypatch.setattr(plugin_registry, "entry_points", counted)
    monkeypatch.setattr(plugin_registry, "_last_scan", None)
    for group in ENTRY_POINT_GROUPS.values():
        assert [e.name for e in installed_entry_points(group)] == [
            e.name for e in real(group=group)
        ]
    assert installed_entry_points("console_scripts")  # any group, from the same scan
    assert len(scans) == 1


def test_a_distribution_installed_after_the_first_scan_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = "mlgrid.test_scan_group"
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_entry_points(group) == []
    _install(tmp_path, "scan_first", group, "first = scan_first:Thing")  # the folder changes
    assert [e.value for e in installed_entry_points(group)] == ["scan_first:Thing"]
    other = tmp_path / "other-site"
    other.mkdir()
    _install(other, "scan_second", group, "second = scan_second:Thing")
    monkeypatch.syspath_prepend(str(other))  # a new folder on sys.path
    assert sorted(e.name for e in installed_entry_points(group)) == ["first", "second"]
