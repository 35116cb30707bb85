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


def test_a_confined_token_carries_its_experiment_and_confines_even_an_admin(
    store: AuthStore,
) -> None:
    """A project run's token (scope: its experiment) through the real authenticator, assertion
    and access control: an admin's is cut to EDIT on the run's experiment and on registered
    models and to READ in other experiments, is no admin, and survives the gateway's assertion
    with its scope."""
    from mlgrid_services.common.auth.access import AccessControl
    from mlgrid_services.common.auth.assertion import AssertionSigner
    from mlgrid_services.common.auth.authenticator import Authenticator

    store.create_user("root", "root-password", is_admin=True)
    record, token = store.create_token("root", "project run r1", 60, scope="7")
    assert record.scope == "7"
    assert [t.scope for t in store.list_tokens("root")] == ["7"]
    signer = AssertionSigner("a-secret-of-enough-length-01234")
    identity = Authenticator(store, signer).authenticate(f"Bearer {token}")
    assert identity.scope == "7"
    assert signer.verify(signer.sign(identity)).scope == "7"
    access = AccessControl(store)
    assert not access.is_admin(identity)
    assert access.level(identity, EXPERIMENT, "7") is Permission.EDIT
    assert access.level(identity, EXPERIMENT, "8") is Permission.READ
    assert access.level(identity, ResourceKind.REGISTERED_MODEL, "m") is Permission.EDIT
    assert access.readable(identity, EXPERIMENT, ["7", "8"]) == {"7", "8"}
    # The same admin's ordinary credentials keep their rights.
    plain = Authenticator(store, signer).authenticate(
        "Bearer " + store.create_token("root", "laptop", 0)[1]
    )
    assert access.is_admin(plain) and access.level(plain, EXPERIMENT, "8") is Permission.MANAGE


def test_tokens_are_revoked_by_name(store: AuthStore) -> None:
    store.create_user("alice", "alice-password")
    store.create_user("bob", "bob-password-")
    store.create_token("alice", "ci", 0)
    store.create_token("alice", "ci", 0)
    store.create_token("alice", "laptop", 0)
    store.create_token("bob", "ci", 0)
    assert store.revoke_user_tokens_named("alice", "ci") == 2
    assert [t.name for t in store.list_tokens("alice")] == ["laptop"]
    assert [t.name for t in store.list_tokens("bob")] == ["ci"]  # bob's is not alice's
    with pytest.raises(ResourceDoesNotExist, match="user 'alice' has no access token named 'ci'"):
        store.revoke_user_tokens_named("alice", "ci")
    # A run's tokens go by the run's name; a user's own token of that name stays.
    store.create_token("alice", "project run r9", 0)
    store.create_token("alice", "project run r9", 60, scope="3")
    assert store.revoke_tokens_named("project run r9") == 1
    assert [t.scope for t in store.list_tokens("alice") if t.name == "project run r9"] == [""]
