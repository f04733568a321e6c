"""Model instances from hand-written SQL on the hot paths, without compiling a queryset per request.

Composing a query through the ORM costs more CPU than PostgreSQL spends answering it (about
1 ms for a select with two joined models, against 0.1 ms for the round trip). The few statements
every booking runs are written out once instead; their column lists come from the models' own
metadata (so a new field is read without touching the SQL) and their rows become ordinary model
instances through ``Model.from_db``, exactly as a queryset would make them.
"""

from __future__ import annotations

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import signals

try:
    import psycopg
except ImportError:  # SQLite only: the prepared path below is PostgreSQL's
    psycopg = None


@cache
def _concrete(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fields = model._meta.concrete_fields
    return tuple(f.attname for f in fields), tuple(f.column for f in fields)


def columns(model: type[models.Model], alias: str) -> str:
    """The model's concrete columns, qualified by ``alias``, in ``from_row``'s order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(column)}" for column in _concrete(model)[1])


def width(model: type[models.Model]) -> int:
    return len(_concrete(model)[0])


BIGINT = (-(2 ** 63), 2 ** 63 - 1)


def one(sql: str, params) -> tuple | None:
    """The first row of ``sql``, or None. An integer parameter beyond 64 bits matches no row (as the ORM
    answers such a lookup) rather than reaching the driver, which SQLite refuses with an OverflowError:
    an id from a URL or a body such as 10^23 is a 404, never a 500."""
    if any(isinstance(value, int) and not BIGINT[0] <= value <= BIGINT[1] for value in params):
        return None
    return run(sql, params, _first)


def _first(cursor):
    return cursor.fetchone()


def _all(cursor):
    return cursor.fetchall()


def fetchall(sql: str, params) -> list[tuple]:
    """Every row of ``sql`` (``run``)."""
    return run(sql, params, _all)


def run(sql: str, params, fetch=_first):
    """Execute one of the hot paths' statements and return ``fetch(cursor)``.

    On PostgreSQL the statement is prepared on this connection the first time it runs (psycopg's
    server-side binding, ``prepare=True``) and executed by name from then on: the server neither parses
    nor plans it again (most of its cost for a one-row statement), and the parameters travel apart
    from the text instead of being quoted into it, which is less work in this process too. Django's
    own cursors bind on the client and are not affected. With queries being recorded (``DEBUG``, a
    test counting them) or an execute wrapper installed, Django's cursor runs it, so that they see it.
    Errors are Django's (``IntegrityError`` …), as from ``connection.cursor()``.
    """
    db = connections[DEFAULT_DB_ALIAS]   # the proxy ``connection`` looks it up again on every attribute
    if db.vendor != "postgresql" or db.queries_logged or db.execute_wrappers:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return fetch(cursor)
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return fetch(cursor)


def instances(row, *model_classes: type[models.Model], offset: int = 0) -> list:
    """One instance per model, their columns side by side in ``row`` from ``offset`` (``from_row`` each)."""
    found = []
    for model in model_classes:
        found.append(from_row(model, row, offset))
        offset += width(model)
    return found


def from_row(model: type[models.Model], row, offset: int = 0):
    """The instance whose columns start at ``row[offset]`` (None when its primary key is NULL, as for
    the missing side of a LEFT JOIN), with the database's values converted as a queryset would."""
    names = _concrete(model)[0]
    values = row[offset:offset + len(names)]
    if values[0] is None and model._meta.pk.attname == names[0]:
        return None
    converters = _converters(model)
    if converters:
        db = connections[DEFAULT_DB_ALIAS]
        values = list(values)
        for index, col, chain in converters:
            for converter in chain:
                values[index] = converter(values[index], col, db)
    return model.from_db(DEFAULT_DB_ALIAS, names, values)


@cache
def _converters(model: type[models.Model]) -> tuple:
    """(position, column expression, converters) of each column that needs converting: the backend's (SQLite's
    datetimes and decimals) and the field's own (JSON), as the compiler applies them. One database
    vendor per process, so they are looked up once."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.get_col(model._meta.db_table)
        chain = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if chain:
            found.append((index, col, tuple(chain)))
    return tuple(found)


def insert(instance: models.Model) -> models.Model:
    """``instance.save(force_insert=True)`` with the INSERT written once per model: each field's
    ``pre_save`` (defaults, ``auto_now``) and database preparation as ``save`` applies them, the
    primary key read back by ``RETURNING`` (or written, when it is not the database's to choose: a
    one-to-one key). A model with save signals listening, or its own ``save``, is saved by ``save``
    itself, so nothing they do is skipped (as is one inheriting a table, or given a key the database
    would otherwise choose)."""
    model = type(instance)
    if (signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
            or model.save is not models.Model.save or model._meta.parents
            or (instance.pk is not None and model._meta.pk.db_returning)):
        instance.save(force_insert=True)
        return instance
    instance._prepare_related_fields_for_save(operation_name="save")
    fields = _insert_fields(model)
    # The connection itself, not the ``connection`` proxy: each attribute of the proxy is a lookup in
    # a context-local mapping, and preparing a booking's row reads one per field.
    db = connections[DEFAULT_DB_ALIAS]
    values = [field.get_db_prep_save(field.pre_save(instance, True), db) for field in fields]
    instance.pk = run(_insert_sql(model), values)[0]
    instance._state.adding, instance._state.db = False, DEFAULT_DB_ALIAS
    return instance


@cache
def _insert_fields(model: type[models.Model]) -> tuple:
    return tuple(f for f in model._meta.concrete_fields if not f.primary_key or not f.db_returning)


@cache
def _insert_sql(model: type[models.Model]) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    return (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {quote(model._meta.pk.column)}")
