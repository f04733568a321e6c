"""Writing many rows without a model instance per row.

Set-based jobs (reconciliation, the audit of a batch, the statistics refresh, the city generator)
write 10^4 to 10^6 rows. Building Django objects and a ``bulk_create`` statement for them costs
more than the database does, so rows go in as plain tuples: on PostgreSQL by ``COPY`` (parsed in
C on both sides), elsewhere by ``executemany``. Every concrete column the caller does not give
gets its field default, as ``Model()`` would give it (the tables have no database defaults).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Sequence

from django.db import connection, models
from django.utils import timezone

_temporary_names = itertools.count(1)


def pg_array(values: Iterable[int | str]) -> str:
    """A PostgreSQL array literal (``{1,2,3}``, ``{"a","b"}``) for one parameter cast in the SQL
    (``%(ids)s::bigint[]``). psycopg quotes a Python list element by element in Python, about 2 µs an
    element (36 ms for 9,000 ids and 9,000 hashes); this is a join in C. Integers as they are; strings
    double-quoted with backslash and quote escaped, so any text round-trips (tests/test_bulk_insert.py)."""
    values = list(values)
    if all(type(value) is int for value in values):
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for value in values) + "}"


def among(ids: Sequence[int]):
    """What ``pk__in=`` takes for a chunk of 10^3–10^4 ids: on PostgreSQL one array parameter
    (``IN (SELECT unnest(…))``) instead of a placeholder per id, which Django resolves and psycopg
    binds one by one (about 20 µs of CPU per id); elsewhere the list itself."""
    if connection.vendor != "postgresql":
        return list(ids)
    from django.db.models.expressions import RawSQL

    return RawSQL("SELECT unnest(%s::bigint[])", [pg_array(ids)])


def defaults_for(model: type[models.Model], columns: Sequence[str], *,
                 now: dt.datetime | None = None) -> tuple[list[str], tuple]:
    """The other concrete columns (attnames) of ``model`` and their defaults, computed once."""
    now = now or timezone.now()
    names, values = [], []
    for field in model._meta.concrete_fields:
        if field.attname in columns or field.primary_key:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        elif field.has_default():
            value = field.get_default()
        elif field.null:
            value = None
        elif isinstance(field, models.CharField | models.TextField | models.FileField):
            value = ""
        else:
            raise ValueError(f"{model._meta.label}.{field.name} needs a value")
        names.append(field.attname)
        values.append(value)
    return names, tuple(values)


class JsonText(str):
    """A JSON column's value already written as JSON text by the caller (who encoded it once for
    many rows): ``insert_rows`` stores it as it is instead of encoding it again."""

    __slots__ = ()


def _json_text(field: models.JSONField):
    """A JSON column's value as the text COPY hands to the server (None stays SQL NULL, as the ORM
    stores it): the field's encoder, without the ORM's per-value wrapping (10^5 audit events a run)."""
    encoder = field.encoder

    def prepare(value):
        if value is None or type(value) is JsonText:
            return value
        return json.dumps(value, cls=encoder)

    return prepare


def _stored_form(field: models.Field):
    """A value as the generic path (SQLite) stores it: the field's own preparation, JSON text as given."""
    def prepare(value):
        if type(value) is JsonText:
            return str(value)
        return field.get_db_prep_save(value, connection)

    return prepare


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple], *,
                ignore_conflicts: bool = False, now: dt.datetime | None = None) -> int:
    """Insert ``rows`` (tuples in the order of ``columns``, attnames such as ``booking_id``).

    ``ignore_conflicts`` skips rows that break a unique constraint, as ``bulk_create`` does.
    Returns how many rows were given. Runs in the caller's transaction.
    """
    tail_names, tail = defaults_for(model, columns, now=now)
    names = [*columns, *tail_names]
    fields = {field.attname: field for field in model._meta.concrete_fields}
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    column_sql = ", ".join(quote(fields[name].column) for name in names)
    postgres = connection.vendor == "postgresql"
    # PostgreSQL's COPY adapts Python values itself, but for JSON (given as its text); SQLite
    # needs every value in its stored form (UTC text timestamps and so on), as the ORM makes it.
    prepared = [(index, _json_text(fields[name]) if postgres else _stored_form(fields[name]))
                for index, name in enumerate(names)
                if not postgres or isinstance(fields[name], models.JSONField)]

    def ready(row: tuple) -> tuple:
        row = row + tail
        if not prepared:
            return row
        values = list(row)
        for index, prepare in prepared:
            values[index] = prepare(values[index])
        return tuple(values)

    count = 0
    # Table and column names come from the model, quoted; every value is data, never SQL.
    # ``wrap_database_errors``: a failing COPY raises Django's IntegrityError and so on, as the ORM does.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if postgres:
            target = table
            if ignore_conflicts:
                # COPY cannot skip a conflicting row: stage the rows, then insert what does not conflict.
                target = quote(f"bulk_{model._meta.db_table}_{next(_temporary_names)}")
                cursor.execute(f"CREATE TEMPORARY TABLE {target} AS SELECT {column_sql} FROM {table} "  # noqa: S608
                               "WITH NO DATA")
            with cursor.copy(f"COPY {target} ({column_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(ready(row))
                    count += 1
            if ignore_conflicts:
                cursor.execute(f"INSERT INTO {table} ({column_sql}) SELECT {column_sql} FROM {target} "  # noqa: S608
                               "ON CONFLICT DO NOTHING")
                cursor.execute(f"DROP TABLE {target}")
        else:
            placeholders = ", ".join(["%s"] * len(names))
            conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
            batch = [ready(row) for row in rows]
            count = len(batch)
            if batch:
                cursor.executemany(f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders}){conflict}",  # noqa: S608
                                   batch)
    return count


def insert_select(model: type[models.Model], columns: Sequence[str], select: str, params: dict, *,
                  suffix: str = "") -> list:
    """PostgreSQL: ``INSERT INTO model AS existing (columns…, defaults…) SELECT … FROM (select)``.

    For rows the database computes itself (nothing travels through Python). ``select`` yields
    ``columns`` in order, with ``%(name)s`` parameters; every other concrete column gets its field
    default, as ``insert_rows`` gives it. ``suffix`` may add ``ON CONFLICT …`` (the table is named
    ``existing`` there) and ``RETURNING …``; the returned rows, if any, are the result.
    """
    tail_names, tail = defaults_for(model, columns)
    fields = {field.attname: field for field in model._meta.concrete_fields}
    quote = connection.ops.quote_name
    target = ", ".join(quote(fields[name].column) for name in (*columns, *tail_names))
    extra = "".join(f", %(default_{index})s" for index in range(len(tail)))
    params = {**params, **{f"default_{index}": value for index, value in enumerate(tail)}}
    sql = (f"INSERT INTO {quote(model._meta.db_table)} AS existing ({target}) "  # noqa: S608 - names from models
           f"SELECT *{extra} FROM ({select}) AS source {suffix}")
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []
