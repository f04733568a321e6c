"""No double booking, ever: PostgreSQL refuses overlapping active bookings of one instrument.

The protected range is [start, blocked_until), where blocked_until = end + the buffer, so
back-to-back bookings (one ends where the next begins) are allowed. SQLite has no exclusion
constraints; there the booking service runs in IMMEDIATE transactions (one writer at a time)
and checks overlaps inside them.
"""

from django.db import migrations

ACTIVE = "('pending', 'confirmed', 'completed', 'no_show')"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        "ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist ("
        " instrument_id WITH =, tstzrange(start, blocked_until, '[)') WITH &&"
        f") WHERE (state IN {ACTIVE})"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
