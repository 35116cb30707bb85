"""Parameters: types, defaults, paths, and shell quoting checked by a real shell."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.params import build_command, needs_download, resolve_parameters
from mlgrid.projects.spec import EntryPoint, Parameter

HOSTILE = [
    "; rm -rf /",
    "$(touch pwned)",
    "`touch pwned`",
    'it\'s "quoted"',
    "a b\tc\nd",
    "&& echo injected",
    "$HOME ${PATH}",
    "-not-an-option",
    "",
]


def entry(command: str, **params: Parameter) -> EntryPoint:
    return EntryPoint(name="main", command=command, parameters=params)


def test_defaults_types_and_extras(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n")
    ep = entry(
        "python t.py {alpha} {data} {out}",
        alpha=Parameter("alpha", "float", "0.1"),
        data=Parameter("data", "path"),
        out=Parameter("out", "uri", "results"),
    )
    resolved = resolve_parameters(ep, {"data": "data.csv", "epochs": "3"}, tmp_path)
    assert resolved.declared == {
        "alpha": "0.1",
        "data": str(tmp_path / "data.csv"),
        "out": str(tmp_path / "results"),
    }
    assert resolved.extra == {"epochs": "3"}
    assert resolved.all() == {**resolved.declared, "epochs": "3"}
    assert build_command(ep, resolved.declared, resolved.extra) == (
        f"python t.py 0.1 {tmp_path / 'data.csv'} {tmp_path / 'results'} --epochs 3"
    )


def test_missing_parameter_is_named() -> None:
    ep = entry("run {a} {b}", a=Parameter("a"), b=Parameter("b", "float"))
    with pytest.raises(InvalidParameterValue, match=r"needs parameter\(s\) a, b"):
        resolve_parameters(ep, {}, Path.cwd())


@pytest.mark.parametrize("value", ["abc", "1.2.3", "", "0x"])
def test_float_is_validated(value: str) -> None:
    ep = entry("run {lr}", lr=Parameter("lr", "float"))
    with pytest.raises(InvalidParameterValue, match=r"parameter 'lr' .* must be a number"):
        resolve_parameters(ep, {"lr": value}, Path.cwd())


def test_path_must_exist_and_remote_paths_are_left_for_download(tmp_path: Path) -> None:
    ep = entry("run {p}", p=Parameter("p", "path"))
    with pytest.raises(InvalidParameterValue, match="no such file or directory"):
        resolve_parameters(ep, {"p": "nope.csv"}, tmp_path)
    for remote in ("s3://bucket/key.csv", "runs:/abc/data.csv", "models:/m/1"):
        resolved = resolve_parameters(ep, {"p": remote}, tmp_path)
        assert resolved.declared["p"] == remote
        assert needs_download("path", remote)
    (tmp_path / "f").write_text("")
    file_uri = (tmp_path / "f").as_uri()
    assert resolve_parameters(ep, {"p": file_uri}, tmp_path).declared["p"] == str(tmp_path / "f")
    assert not needs_download("path", str(tmp_path / "f"))
    assert not needs_download("uri", "s3://bucket/key")


def test_uri_keeps_schemes_and_absolutises_paths(tmp_path: Path) -> None:
    ep = entry("run {u}", u=Parameter("u", "uri"))
    assert resolve_parameters(ep, {"u": "s3://b/k"}, tmp_path).declared["u"] == "s3://b/k"
    assert resolve_parameters(ep, {"u": "sub/dir"}, tmp_path).declared["u"] == str(
        tmp_path / "sub/dir"
    )


def test_command_template_fields_must_be_declared() -> None:
    ep = entry("run {a} {a.__class__}", a=Parameter("a"))
    with pytest.raises(InvalidParameterValue, match="not a declared parameter"):
        build_command(ep, {"a": "x"}, {})
    with pytest.raises(InvalidParameterValue, match="not a valid format string"):
        build_command(entry("run {a", a=Parameter("a")), {"a": "x"}, {})
    assert build_command(entry("echo {{literal}} {a}"), {"a": "x"}, {}) == "echo {literal} x"


def test_hostile_values_reach_the_program_literally(tmp_path: Path) -> None:
    """The built command runs in a real bash; the program sees each value byte for byte."""
    (tmp_path / "argv.py").write_text(
        "import json, sys\njson.dump(sys.argv[1:], open('argv.json', 'w'))\n"
    )
    ep = entry(
        f"{sys.executable} argv.py {{first}} --second={{second}}",
        first=Parameter("first"),
        second=Parameter("second"),
    )
    for value in HOSTILE:
        extra = {"key with space": value, "k": value}
        command = build_command(ep, {"first": value, "second": value}, extra)
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
        argv = json.loads((tmp_path / "argv.json").read_text())
        assert argv == [value, f"--second={value}", "--key with space", value, "--k", value]
    assert not (tmp_path / "pwned").exists()
