"""services/common/store_router.py: one policy for which store serves a tracking or registry
call, whatever service (tracking, registry, a served plugin) asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.protocol import STORE_URI_METADATA
from mlgrid_services.common import store_router
from mlgrid_services.common.store_router import StoreRouter, same_store


class Call:
    """A call's context as the router reads it: only its metadata (the gRPC boundary)."""

    def __init__(self, store_uri: str | None = None) -> None:
        self.metadata = [(STORE_URI_METADATA, store_uri)] if store_uri else []

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata


class Opener:
    """Records what the router opens and closes."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    def __call__(self, uri: str) -> tuple[str, object]:
        self.opened.append(uri)
        return f"store at {uri}", lambda: self.closed.append(uri)


def router(opener: Opener, default: str | None = "sqlite:///srv/main.db") -> StoreRouter[str]:
    return StoreRouter(
        opener, default_uri=default, opened_on_request=["file-plugin"], what="tracking service"
    )


@pytest.mark.parametrize("named", [None, "grpc://gateway:50051", "grpcs://gateway:443"])
def test_a_call_naming_no_store_or_a_gateway_uses_the_configured_store(named: str | None) -> None:
    opener = Opener()
    assert router(opener).for_call(Call(named)) == "store at sqlite:///srv/main.db"  # type: ignore[arg-type]
    assert opener.opened == ["sqlite:///srv/main.db"]  # opened at start, once


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("postgres://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("mysql://root@h/db", "mariadb+pymysql://root@h/db"),
        ("sqlite:////srv/../srv/main.db", "sqlite:////srv/main.db"),
    ],
)
def test_spellings_of_one_database_are_the_same_store(a: str, b: str, tmp_path: Path) -> None:
    assert same_store(a, b)
    assert not same_store(a, b.replace("db", "other"))


def test_the_configured_store_under_another_spelling_is_served(tmp_path: Path) -> None:
    opener = Opener()
    routes = router(opener, f"sqlite:///{tmp_path}/main.db")
    assert routes.for_uri(f"sqlite:///{tmp_path}/./main.db") is routes.default
    assert len(opener.opened) == 1


def test_a_plugin_store_is_opened_once_and_closed_with_the_router() -> None:
    opener = Opener()
    routes = router(opener)
    first = routes.for_call(Call("file-plugin:///data/a"))  # type: ignore[arg-type]
    assert routes.for_call(Call("file-plugin:///data/a")) is first  # type: ignore[arg-type]
    routes.for_uri("file-plugin:///data/b")
    assert opener.opened == [
        "sqlite:///srv/main.db",
        "file-plugin:///data/a",
        "file-plugin:///data/b",
    ]
    routes.close()
    assert opener.closed == list(reversed(opener.opened))


def test_another_database_is_refused_naming_what_is_served() -> None:
    opener = Opener()
    with pytest.raises(InvalidParameterValue) as refused:
        router(opener).for_uri("sqlite:////etc/elsewhere.db")
    message = str(refused.value)
    assert "is not served here" in message and "'sqlite' store" in message
    assert "'file-plugin'" in message
    assert opener.opened == ["sqlite:///srv/main.db"]  # nothing opened on the client's say-so


def test_without_a_configured_store_a_call_must_name_one() -> None:
    opener = Opener()
    routes = router(opener, default=None)
    with pytest.raises(InvalidParameterValue, match="MLGRID_STORE_URI"):
        routes.for_call(Call())  # type: ignore[arg-type]
    assert routes.for_uri("file-plugin:///x") == "store at file-plugin:///x"


def test_open_stores_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_router, "MAX_STORES", 3)
    routes = router(Opener())
    routes.for_uri("file-plugin:///1")
    routes.for_uri("file-plugin:///2")
    with pytest.raises(InvalidParameterValue, match="already has 3 stores open"):
        routes.for_uri("file-plugin:///3")
