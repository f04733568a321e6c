"""Bookings, their outbox, feed tokens and credit, as of the split of the usage app.

Replaces the first six migrations, whose history had the usage tables and a foreign key up to billing
(``Booking.account``). A database that applied those six takes this one as applied; usage's 0001
then moves the usage tables into the usage app and billing's 0003 moves the booking's account into
billing's own table. No double booking: on PostgreSQL an exclusion constraint refuses overlapping
active bookings of one instrument over [start, blocked_until) (blocked_until = end + the buffer, so
back-to-back bookings are allowed). SQLite has no exclusion constraints; there the booking service
runs in IMMEDIATE transactions (one writer at a time) and checks overlaps inside them.
"""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


ACTIVE = "('pending', 'confirmed', 'completed', 'no_show')"


def add_no_overlap_constraint(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        "ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist ("
        " instrument_id WITH =, tstzrange(start, blocked_until, '[)') WITH &&"
        f") WHERE (state IN {ACTIVE})"
    )


def drop_no_overlap_constraint(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap")


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ("bookings", "0001_initial"),
        ("bookings", "0002_no_overlap_constraint"),
        ("bookings", "0003_usage"),
        ("bookings", "0004_active_until_index"),
        ("bookings", "0005_booking_account"),
        ("bookings", "0006_lean_indexes"),
    ]

    dependencies = [
        ('accounts', '0001_initial'),
        ('catalog', '0004_percent_labels'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Booking',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField(verbose_name='start')),
                ('end', models.DateTimeField(verbose_name='end')),
                ('blocked_until', models.DateTimeField()),
                ('state', models.CharField(choices=[('pending', 'Awaiting approval'), ('confirmed', 'Confirmed'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled'), ('completed', 'Completed'), ('no_show', 'No-show')], default='confirmed', max_length=12, verbose_name='state')),
                ('purpose', models.TextField(max_length=2000, verbose_name='purpose')),
                ('is_internal', models.BooleanField(default=True, help_text='Derived from organizations.', verbose_name='internal use')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('sequence', models.PositiveIntegerField(default=0, help_text='iCalendar SEQUENCE, raised on every change.')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('cancelled_at', models.DateTimeField(blank=True, null=True)),
                ('reason', models.TextField(blank=True, max_length=2000, verbose_name='reason')),
                ('late_cancellation', models.BooleanField(default=False, verbose_name='late cancellation')),
                ('direction', models.CharField(choices=[('research', 'Research'), ('development', 'Development'), ('teaching', 'Teaching'), ('other', 'Other')], default='research', max_length=12, verbose_name='service direction')),
                ('cancelled_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('charged_lab', models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='charged_bookings', to='accounts.lab')),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('instrument', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to='catalog.instrument')),
                ('user', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='bookings', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'booking',
                'verbose_name_plural': 'bookings',
                'ordering': ['start', 'id'],
            },
        ),
        migrations.CreateModel(
            name='CreditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=20)),
                ('delta', models.IntegerField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('booking', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.booking')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credit_events', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.CreateModel(
            name='FeedToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(choices=[('mine', 'My bookings'), ('lab', 'Lab bookings')], default='mine', max_length=10)),
                ('digest', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('lab', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.lab')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='feed_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='Notification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('invitation', 'Invitation'), ('cancellation', 'Cancellation'), ('reminder', 'Reminder')], max_length=15)),
                ('sequence', models.PositiveIntegerField()),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=10)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('last_error', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('booking', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='bookings.booking')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='UserCredit',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('score', models.IntegerField(default=100)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='credit', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.AddIndex(
            model_name='booking',
            index=models.Index(fields=['instrument', 'start'], name='bookings_bo_instrum_ecbae6_idx'),
        ),
        migrations.AddIndex(
            model_name='booking',
            index=models.Index(condition=models.Q(('state__in', ['pending', 'confirmed', 'completed', 'no_show'])), fields=['instrument', 'blocked_until'], name='booking_active_until_idx'),
        ),
        migrations.AddIndex(
            model_name='booking',
            index=models.Index(fields=['user', 'start'], name='bookings_bo_user_id_6b82c4_idx'),
        ),
        migrations.AddIndex(
            model_name='booking',
            index=models.Index(fields=['state', 'start'], name='bookings_bo_state_b49c6c_idx'),
        ),
        migrations.AddIndex(
            model_name='booking',
            index=models.Index(fields=['charged_lab', 'start'], name='bookings_bo_charged_79b11d_idx'),
        ),
        migrations.AddConstraint(
            model_name='booking',
            constraint=models.CheckConstraint(condition=models.Q(('start__lt', models.F('end'))), name='booking_start_before_end'),
        ),
        migrations.AddConstraint(
            model_name='booking',
            constraint=models.CheckConstraint(condition=models.Q(('end__lte', models.F('blocked_until'))), name='booking_blocked_after_end'),
        ),
        migrations.AddConstraint(
            model_name='creditevent',
            constraint=models.UniqueConstraint(condition=models.Q(('booking__isnull', False)), fields=('booking', 'kind'), name='credit_event_once_per_booking'),
        ),
        migrations.AddIndex(
            model_name='notification',
            index=models.Index(fields=['state', 'created_at'], name='bookings_no_state_7c4452_idx'),
        ),
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.UniqueConstraint(fields=('booking', 'kind', 'sequence'), name='notification_once_per_revision'),
        ),
        migrations.RunPython(add_no_overlap_constraint, drop_no_overlap_constraint),
    ]
