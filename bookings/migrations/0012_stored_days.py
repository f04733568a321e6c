"""Stored days of availability (``FreeDay``, ``FreeEpoch``) and, on PostgreSQL, the triggers that keep them
honest: see ``bookings.availability`` ("stored days").

A change to an active booking (created, cancelled, moved) raises the version of every UTC day its time and
buffer touch (``[start - buffer, blocked_until)``), creating the day's row if there is none, and empties it;
a read that computed such a day before the change committed then finds another version and does not store
it. A change to an instrument's opening windows, downtime or booking policy raises its epoch (one row per
instrument per statement), which makes all its stored days stale. The states below are
``Booking.ACTIVE_STATES`` (``tests/bookings/test_stored_days.py`` holds them equal).
"""

import django.db.models.deletion
from django.db import migrations, models

ACTIVE = "('pending', 'confirmed', 'completed', 'no_show', 'held')"
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

# One statement for the old and the new row, days in ascending order (as a read stores them), so that two
# writers never take the same days' locks in opposite orders.
BOOKING_FUNCTION = """
CREATE OR REPLACE FUNCTION bookings_free_day_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bookings_freeday AS f (instrument_id, day, version, epoch, free, busy, free_head, free_tail)
    SELECT DISTINCT r.instrument_id, d, 1, 0, NULL::text, NULL::text, false, false
    FROM (SELECT OLD.instrument_id, OLD.start, OLD.blocked_until WHERE OLD.state IN __ACTIVE__
          UNION ALL
          SELECT NEW.instrument_id, NEW.start, NEW.blocked_until WHERE NEW.state IN __ACTIVE__) r (instrument_id, a, b)
    CROSS JOIN LATERAL (SELECT coalesce((SELECT p.buffer_minutes FROM catalog_bookingpolicy p
                                         WHERE p.instrument_id = r.instrument_id), 0) * interval '1 minute') p (buffer)
    CROSS JOIN LATERAL generate_series(date_bin('24 hours', r.a - p.buffer, __ORIGIN__), r.b, interval '24 hours') d
    WHERE d < r.b
    ORDER BY 1, 2
    ON CONFLICT (instrument_id, day) DO UPDATE SET version = f.version + 1, free = NULL, busy = NULL;
    RETURN NULL;
END $$
""".replace("__ACTIVE__", ACTIVE).replace("__ORIGIN__", ORIGIN)
# Only changes that move active time: a state change between two active states (confirmed to completed, as
# reconciliation makes by the thousand) or an edit of the purpose fires nothing.
BOOKING_TRIGGERS = [
    "CREATE TRIGGER booking_free_day_insert AFTER INSERT ON bookings_booking FOR EACH ROW "
    "WHEN (NEW.state IN __ACTIVE__) EXECUTE FUNCTION bookings_free_day_touch()",
    "CREATE TRIGGER booking_free_day_update AFTER UPDATE ON bookings_booking FOR EACH ROW "
    "WHEN ((OLD.state IN __ACTIVE__) IS DISTINCT FROM (NEW.state IN __ACTIVE__) "
    "OR ((NEW.state IN __ACTIVE__) AND (OLD.instrument_id, OLD.start, OLD.\"end\", OLD.blocked_until) "
    "IS DISTINCT FROM (NEW.instrument_id, NEW.start, NEW.\"end\", NEW.blocked_until))) "
    "EXECUTE FUNCTION bookings_free_day_touch()",
    "CREATE TRIGGER booking_free_day_delete AFTER DELETE ON bookings_booking FOR EACH ROW "
    "WHEN (OLD.state IN __ACTIVE__) EXECUTE FUNCTION bookings_free_day_touch()",
]
EPOCH_FUNCTION = """
CREATE OR REPLACE FUNCTION bookings_free_epoch_raise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bookings_freeepoch AS e (instrument_id, epoch)
        SELECT DISTINCT instrument_id, 1 FROM added ORDER BY 1
        ON CONFLICT (instrument_id) DO UPDATE SET epoch = e.epoch + 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO bookings_freeepoch AS e (instrument_id, epoch)
        SELECT DISTINCT instrument_id, 1 FROM gone ORDER BY 1
        ON CONFLICT (instrument_id) DO UPDATE SET epoch = e.epoch + 1;
    ELSE
        INSERT INTO bookings_freeepoch AS e (instrument_id, epoch)
        SELECT instrument_id, 1 FROM (SELECT instrument_id FROM added UNION SELECT instrument_id FROM gone) x
        ORDER BY 1
        ON CONFLICT (instrument_id) DO UPDATE SET epoch = e.epoch + 1;
    END IF;
    RETURN NULL;
END $$
"""
EPOCH_TABLES = ["catalog_openingwindow", "catalog_downtime", "catalog_bookingpolicy"]


def _epoch_triggers(table: str) -> list[str]:
    run = "FOR EACH STATEMENT EXECUTE FUNCTION bookings_free_epoch_raise()"
    return [f"CREATE TRIGGER {table}_free_epoch_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS added {run}",
            f"CREATE TRIGGER {table}_free_epoch_update AFTER UPDATE ON {table} "
            f"REFERENCING OLD TABLE AS gone NEW TABLE AS added {run}",
            f"CREATE TRIGGER {table}_free_epoch_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS gone {run}"]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # Derived data that a read recomputes: no WAL for it (after a crash the table is empty, which is correct),
    # and a day of a dense calendar (about 5 kB of text) kept in its row, uncompressed.
    schema_editor.execute("ALTER TABLE bookings_freeday SET UNLOGGED")
    schema_editor.execute("ALTER TABLE bookings_freeday SET (toast_tuple_target = 8160)")
    schema_editor.execute(BOOKING_FUNCTION)
    for statement in BOOKING_TRIGGERS:
        schema_editor.execute(statement.replace("__ACTIVE__", ACTIVE))
    schema_editor.execute(EPOCH_FUNCTION)
    for table in EPOCH_TABLES:
        for statement in _epoch_triggers(table):
            schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ("insert", "update", "delete"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS booking_free_day_{name} ON bookings_booking")
        for table in EPOCH_TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_free_epoch_{name} ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS bookings_free_day_touch()")
    schema_editor.execute("DROP FUNCTION IF EXISTS bookings_free_epoch_raise()")


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0011_series'),
        ('catalog', '0008_search_sort_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='FreeEpoch',
            fields=[
                ('instrument_id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('epoch', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='FreeDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateTimeField()),
                ('version', models.BigIntegerField(default=0)),
                ('epoch', models.BigIntegerField(default=0)),
                ('free', models.TextField(null=True)),
                ('busy', models.TextField(null=True)),
                ('free_head', models.BooleanField(default=False)),
                ('free_tail', models.BooleanField(default=False)),
                ('instrument', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='catalog.instrument')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('instrument', 'day'), name='free_day_once')],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers, elidable=False),
    ]
