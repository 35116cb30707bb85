"""The hostile path and URI checks of mlgrid_services.common.paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.common.paths import (
    check_inside_root,
    check_relative_path,
    check_uri,
    decode_fully,
    resolve_inside,
)

HOSTILE_PATHS = [
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("a/..", "'..'"),
    ("%2e%2e/x", "'..'"),
    ("%252e%252e/x", "'..'"),
    ("%25252e%25252e%252fx", "'..'"),
    ("a/%2e%2e%2f%2e%2e/x", "'..'"),
    ("/etc/passwd", "absolute"),
    ("%2fetc%2fpasswd", "absolute"),
    ("C:\\x", "backslash"),
    ("C:/x", "drive"),
    ("a\\b", "backslash"),
    ("..%5c..%5cx", "backslash"),
    ("a\x00b", "NUL"),
    ("a%00b", "NUL"),
    ("a#b", "'#'"),
    ("a?b", "'?'"),
    ("a%3fb", "'?'"),
    ("a//b", "empty segment"),
    ("a\nb", "control character"),
    ("file:///etc/passwd", "URI"),
    ("%ff%fe", "UTF-8"),
]


@pytest.mark.parametrize(("path", "why"), HOSTILE_PATHS)
def test_hostile_relative_paths_are_refused_naming_the_path(path: str, why: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        check_relative_path(path)
    assert repr(path) in caught.value.message
    assert why in caught.value.message


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", ""),
        ("a", "a"),
        ("a/b.txt", "a/b.txt"),
        ("dir/", "dir"),
        ("./a/./b", "a/b"),
        ("model%20v1/file", "model v1/file"),
        ("weird..name", "weird..name"),
        ("ab:c", "ab:c"),
    ],
)
def test_ordinary_paths_are_normalised(path: str, expected: str) -> None:
    assert check_relative_path(path) == expected


def test_an_empty_path_can_be_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="empty"):
        check_relative_path("", "path", allow_empty=False)


def test_decoding_stops_after_a_bounded_number_of_rounds() -> None:
    value = "."
    for _ in range(12):
        value = value.replace("%", "%25").replace(".", "%2e")
    with pytest.raises(InvalidParameterValue, match="still percent-encoded"):
        decode_fully(value)


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret", target_is_directory=True)
    (root / "fine").symlink_to(root / "inside", target_is_directory=True)
    with pytest.raises(InvalidParameterValue, match="symlink"):
        resolve_inside(root, "escape/file.txt")
    assert resolve_inside(root, "fine/new.txt") == root.resolve() / "fine" / "new.txt"


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("file:///data/../etc", "'..'"),
        ("file:///data/%2e%2e/etc", "'..'"),
        ("s3://bucket/a/%252e%252e/b", "'..'"),
        ("s3://bucket/a?x=1", "'?'"),
        ("s3://bucket/a#frag", "'#'"),
        ("file://remotehost/data", "no host"),
        ("relative/dir", "relative"),
        ("C:\\data", "backslash"),
        ("file:///a\x00b", "NUL"),
        ("", "empty"),
    ],
)
def test_hostile_uris_are_refused(uri: str, why: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        check_uri(uri)
    assert repr(uri) in caught.value.message
    assert why in caught.value.message


def test_plain_absolute_paths_are_file_uris() -> None:
    parsed = check_uri("/data/artifacts/")
    assert (parsed.scheme, parsed.path) == ("file", "/data/artifacts")


@pytest.mark.parametrize(
    ("location", "root"),
    [
        ("file:///data/root/1/run/artifacts/model", "file:///data/root"),
        ("/data/root/x", "file:///data/root"),
        ("s3://bucket/prefix/run/model", "s3://bucket/prefix"),
        ("s3://bucket/prefix", "s3://bucket/prefix/"),
    ],
)
def test_locations_inside_a_root_are_accepted(location: str, root: str) -> None:
    assert check_inside_root(location, root, "source")


@pytest.mark.parametrize(
    ("location", "root"),
    [
        ("file:///etc", "file:///data/root"),
        ("file:///data/rootless/x", "file:///data/root"),
        ("s3://other/prefix/x", "s3://bucket/prefix"),
        ("s3://bucket/prefix2/x", "s3://bucket/prefix"),
        ("s3://bucket/prefix/%2e%2e/other", "s3://bucket/prefix"),
        ("file:///data/root/../../etc", "file:///data/root"),
    ],
)
def test_locations_outside_a_root_are_refused(location: str, root: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        check_inside_root(location, root, "source")
    assert "source" in caught.value.message
    assert repr(location) in caught.value.message


def test_a_symlinked_location_that_leaves_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(InvalidParameterValue, match="outside"):
        check_inside_root((root / "link").as_uri(), root.as_uri(), "source")
