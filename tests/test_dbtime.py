"""Timestamps read through psycopg's compiled parser (``instrumentshare.core.dbtime``) are exactly what
Django's own loader reads: the same instants, aware in ``datetime.UTC``, the same errors."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DEFAULT_DB_ALIAS, DataError, connection, connections, transaction

from instrumentshare.core import dbtime
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db

VALUES = ["2026-12-03 19:00:00+00", "2026-12-03 19:00:00.5+00", "2026-03-29 01:59:59.999999+00",
          "2026-10-25 01:00:00+02", "2026-12-04 03:00:00+08", "0001-01-01 00:00:00+00",
          "9999-12-31 23:59:59.999999+00", "2000-02-29 12:00:00.000001-05:30"]


def _read(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _with_djangos_loader(read):
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    register_tzloader(dt.UTC, connection.connection)
    try:
        return read()
    finally:
        connection.connection.adapters.register_loader("timestamptz", dbtime._loader())


@requires_postgres
def test_each_new_connection_reads_timestamps_with_the_compiled_parser():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(connection.connection.adapters.types["timestamptz"].oid, 0)
    assert loader is dbtime._loader()
    assert loader.timezone is connection.timezone is dt.UTC


@requires_postgres
def test_the_values_are_djangos_to_the_microsecond_and_in_utc():
    sql = "SELECT v::timestamptz, ARRAY[v::timestamptz], tstzrange(v::timestamptz, NULL) FROM unnest(%s::text[]) v"
    fast = _read(sql, [VALUES])
    assert fast == _with_djangos_loader(lambda: _read(sql, [VALUES]))
    for instant, array, span in fast:
        assert instant.tzinfo is dt.UTC and array[0].tzinfo is dt.UTC and span.lower.tzinfo is dt.UTC
    assert fast[1][0] == dt.datetime(2026, 12, 3, 19, 0, 0, 500000, tzinfo=dt.UTC)
    assert fast[4][0] == dt.datetime(2026, 12, 3, 19, 0, tzinfo=dt.UTC)


@requires_postgres
def test_a_value_python_cannot_hold_is_the_same_error():
    for value in ("infinity", "-infinity"):
        with pytest.raises(DataError), transaction.atomic():
            _read("SELECT %s::timestamptz", [value])
        with pytest.raises(DataError), transaction.atomic():
            _with_djangos_loader(lambda value=value: _read("SELECT %s::timestamptz", [value]))


@requires_postgres
def test_another_zone_keeps_djangos_loader():
    """A connection in another zone (a database ``TIME_ZONE``) is left as Django made it."""
    default = connections[DEFAULT_DB_ALIAS]
    other = type(default)({**default.settings_dict, "TIME_ZONE": "Asia/Shanghai"}, alias="other_zone")
    try:
        other.ensure_connection()
        loader = other.connection.adapters.get_loader(other.connection.adapters.types["timestamptz"].oid, 0)
        assert loader is not dbtime._loader()
        with other.cursor() as cursor:
            cursor.execute("SELECT '2026-12-03 19:00:00+00'::timestamptz")
            assert cursor.fetchone()[0] == dt.datetime(2026, 12, 3, 19, 0, tzinfo=dt.UTC)
    finally:
        other.close()
