"""Time held by the lab (state ``held``: a sample request's scheduled work) blocks the instrument like a
booking: the partial index and, on PostgreSQL, the exclusion constraint against overlaps now cover it."""

from django.conf import settings
from django.db import migrations, models

BEFORE = "('pending', 'confirmed', 'completed', 'no_show')"
AFTER = "('pending', 'confirmed', 'completed', 'no_show', 'held')"


def _constraint(states: str):
    def replace(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute("ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap")
        schema_editor.execute(
            "ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist ("
            " instrument_id WITH =, tstzrange(start, blocked_until, '[)') WITH &&"
            f") WHERE (state IN {states})"
        )

    return replace


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('bookings', '0008_booking_lab_notice_flag'),
        ('catalog', '0004_percent_labels'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='booking',
            name='booking_active_until_idx',
        ),
        migrations.AlterField(
            model_name='booking',
            name='state',
            field=models.CharField(choices=[('pending', 'Awaiting approval'), ('confirmed', 'Confirmed'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled'), ('completed', 'Completed'), ('no_show', 'No-show'), ('held', 'Held by the lab')], default='confirmed', max_length=12, verbose_name='state'),
        ),
        migrations.AddIndex(
            model_name='booking',
            index=models.Index(condition=models.Q(('state__in', ['pending', 'confirmed', 'completed', 'no_show', 'held'])), fields=['instrument', 'blocked_until'], name='booking_active_until_idx'),
        ),
        migrations.RunPython(_constraint(AFTER), _constraint(BEFORE)),
    ]
