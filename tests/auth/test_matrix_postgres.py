"""The permission matrix with every store on PostgreSQL (tracking, registry and the auth store,
migrated there): each RPC at each level, through the gateway port, a tunnel and the service's
own port, as test_matrix.py walks it on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures.postgres import _private_database

from .test_matrix import World, build_world, cases, check_levels


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        _private_database("mlgrid_auth_") as url,
        build_world(tmp_path_factory.mktemp("matrix_pg"), url) as built,
    ):
        yield built


def test_the_stores_are_on_postgresql(world: World) -> None:
    assert world.stack.stack.backend_store_uri.startswith("postgresql")
    assert world.stack.stack.config.auth.store_uri.startswith("postgresql")


@pytest.mark.parametrize(("service", "method", "path"), cases())
def test_each_permission_level_gets_what_it_allows_on_postgresql(
    world: World, service: str, method: str, path: str
) -> None:
    check_levels(world, service, method, path)
