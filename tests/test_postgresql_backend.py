"""The PostgreSQL backend's health check (``instrumentshare.core.postgresql``): no round trip on a
healthy idle connection, and a connection the server ended is found and replaced."""

import select
import time

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql import base as django_base

from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asked(monkeypatch):
    """How often Django's own check (SELECT 1) ran."""
    calls = []
    original = django_base.DatabaseWrapper.is_usable

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(django_base.DatabaseWrapper, "is_usable", counting)
    return calls


def _request_boundary():
    """What Django does between two requests: the next query checks the connection first."""
    connection.close_if_unusable_or_obsolete()


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    with psycopg.connect(**{key: value for key, value in params.items() if key != "cursor_factory"},
                         autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    for _ in range(50):   # the server writes its goodbye; wait until this socket has it
        if not connection.connection.closed and not _quiet():
            return
        time.sleep(0.02)


def _quiet() -> bool:
    readable, _w, _x = select.select([connection.connection.fileno()], [], [], 0)
    return not readable


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@requires_postgres
def test_the_backend_is_ours():
    assert connection.settings_dict["ENGINE"] == "instrumentshare.core.postgresql"
    assert connection.vendor == "postgresql"


@requires_postgres
def test_a_healthy_idle_connection_is_kept_without_a_query(asked):
    pid = _backend_pid()
    for _ in range(3):
        _request_boundary()
        assert _backend_pid() == pid
    assert asked == [], "SELECT 1 was sent to a connection that had nothing to read"


@requires_postgres
def test_a_connection_the_server_ended_is_replaced_before_the_next_query(asked):
    pid = _backend_pid()
    _terminate(pid)
    _request_boundary()
    assert _backend_pid() != pid    # no error: the dead connection was found and a new one opened
    assert asked == [1], "the ended connection was not checked by a query"
