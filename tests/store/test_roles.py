"""Roles (``store.roles``): one holder at a time among every process on a PostgreSQL database; the next
takes the role once its holder releases it or its connection ends; SQLite gives every process every role."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from store.roles import LOCK_CLASS, Role
from tests.support.databases import terminate_backend


def _holder_pid(admin_url: str, role: Role) -> int:
    """The server process (backend) whose session holds ``role``'s lock."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return connection.execute(
                text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND classid = :class AND objid = :key"),
                {"class": LOCK_CLASS & 0xFFFFFFFF, "key": role.key & 0xFFFFFFFF},
            ).scalar_one()  # fmt: skip
    finally:
        admin.dispose()


def test_a_role_has_one_holder_and_the_next_takes_it_once_released(postgres_admin_url):
    first, second = Role("publisher", postgres_admin_url), Role("publisher", postgres_admin_url)
    try:
        assert first.held()
        assert not second.held()
        assert first.held(), "the holder keeps it"
        assert not second.held()

        first.release()
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()


def test_a_holder_whose_connection_ended_learns_it_and_another_takes_over(postgres_admin_url):
    """The server ended the holder's session (its process died, a failover, an idle timeout): the lock went
    with it, another process takes the role, and the old holder says no the next time it asks."""
    first, second = Role("publisher", postgres_admin_url), Role("publisher", postgres_admin_url)
    try:
        assert first.held()
        terminate_backend(postgres_admin_url, _holder_pid(postgres_admin_url, first))
        assert second.held()
        assert not first.held()
        assert not first.held(), "asking again, on a new connection: still the other's"
    finally:
        first.release()
        second.release()


def test_roles_of_different_names_are_held_apart(postgres_admin_url):
    publisher, other = Role("publisher", postgres_admin_url), Role("another role", postgres_admin_url)
    try:
        assert publisher.held() and other.held()
    finally:
        publisher.release()
        other.release()


def test_on_sqlite_every_process_holds_every_role(tmp_path):
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    assert Role("publisher", url).held() and Role("publisher", url).held()
