"""The auth store on SQLite and PostgreSQL: users with scrypt-hashed passwords, hashed tokens,
roles, grants, workspaces, the default permission; deletes take what hangs on them along."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid_services.common.auth.permissions import Permission, ResourceKind, parse_permission
from mlgrid_services.common.auth.store import AuthStore

EXPERIMENT = ResourceKind.EXPERIMENT


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthStore]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'auth.db'}"
    else:
        uri = request.getfixturevalue("fresh_postgres_url")
    opened = AuthStore(uri)
    try:
        yield opened
    finally:
        opened.close()


def test_password_is_stored_as_a_slow_hash_and_checked(store: AuthStore) -> None:
    store.create_user("alice", "correct horse")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM auth_users")).scalar_one()
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert store.check_password("alice", "correct horse") is not None
    assert store.check_password("alice", "wrong horse!") is None
    assert store.check_password("nobody", "correct horse") is None


def test_bad_user_input_names_the_field(store: AuthStore) -> None:
    with pytest.raises(InvalidParameterValue, match="username"):
        store.create_user("no spaces allowed", "long enough")
    with pytest.raises(InvalidParameterValue, match="at least 8"):
        store.create_user("bob", "short")
    store.create_user("bob", "long enough")
    with pytest.raises(ResourceAlreadyExists, match="bob"):
        store.create_user("bob", "long enough")
    with pytest.raises(InvalidParameterValue, match="not a permission"):
        parse_permission("WRITE")


def test_tokens_are_stored_hashed_expire_and_revoke(store: AuthStore) -> None:
    store.create_user("alice", "long enough")
    record, token = store.create_token("alice", "ci", 0)
    with store.engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT token_hash FROM auth_tokens")).scalars().all()
    assert token not in hashes
    found = store.user_for_token(token)
    assert found is not None and found.username == "alice"
    _, expired = store.create_token("alice", "old", 1)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE auth_tokens SET expiration_time = 1 WHERE name = 'old'"))
    assert store.user_for_token(expired) is None
    store.revoke_token(record.token_id)
    assert store.user_for_token(token) is None
    with pytest.raises(ResourceDoesNotExist):
        store.revoke_token(record.token_id)


def test_view_combines_own_role_and_workspace_grants(store: AuthStore) -> None:
    store.create_user("alice", "long enough")
    store.create_role("team", "")
    store.set_role_member("team", "alice", True)
    store.set_grant(EXPERIMENT, "1", Permission.EDIT, role="team")
    store.set_grant(EXPERIMENT, "2", Permission.READ, role="team")
    store.set_grant(EXPERIMENT, "2", Permission.NO_PERMISSIONS, username="alice")
    store.create_workspace("ws")
    store.set_workspace_member("ws", "alice", Permission.USE)
    store.set_default(Permission.NO_PERMISSIONS)
    view = store.subject_view("alice")
    assert view is not None
    assert view.grants[(EXPERIMENT, "1")] is Permission.EDIT
    assert view.own[(EXPERIMENT, "2")] is Permission.NO_PERMISSIONS
    assert view.memberships == {"default": Permission.NO_PERMISSIONS, "ws": Permission.USE}
    store.set_default(Permission.READ, username="alice")
    view = store.subject_view("alice")
    assert view is not None and view.default is Permission.READ


def test_deleting_a_user_removes_its_tokens_grants_and_memberships(store: AuthStore) -> None:
    store.create_user("alice", "long enough")
    _, token = store.create_token("alice", "ci", 0)
    store.set_grant(EXPERIMENT, "1", Permission.MANAGE, username="alice")
    store.create_workspace("ws")
    store.set_workspace_member("ws", "alice", Permission.READ)
    store.delete_user("alice")
    assert store.subject_view("alice") is None
    assert store.user_for_token(token) is None
    assert store.list_grants() == []
    assert store.list_workspaces() == [("ws", [])]
    store.create_user("alice", "long enough")  # a new alice starts with nothing
    view = store.subject_view("alice")
    assert view is not None and view.grants == {}


def test_renamed_resource_keeps_grants_deleted_one_loses_them(store: AuthStore) -> None:
    model = ResourceKind.REGISTERED_MODEL
    store.create_user("alice", "long enough")
    store.create_workspace("ws")
    store.set_grant(model, "m", Permission.MANAGE, username="alice")
    store.place_resource(model, "m", "ws")
    store.move_grants(model, "m", "m2")
    assert [g.resource_id for g in store.list_grants(model)] == ["m2"]
    assert store.resource_workspaces(model, ["m", "m2"]) == {"m2": "ws"}
    store.forget_resource(model, "m2")
    assert store.list_grants(model) == []
    assert store.resource_workspaces(model, ["m2"]) == {}
