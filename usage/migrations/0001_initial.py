"""The usage app's tables: moved from the bookings app where a database has them, created where not.

Until the split, usage sessions, logger events and tokens, billable items, review flags and service
records lived in the bookings app (tables ``bookings_*``). A database of before the split keeps its
rows: the tables are renamed to ``usage_*`` and their indexes to the names the models declare. A new
database gets the tables created. Either way the migration state is the same.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


OLD_TABLES = {
    "loggertoken": "bookings_loggertoken",
    "usagesession": "bookings_usagesession",
    "usageevent": "bookings_usageevent",
    "billableitem": "bookings_billableitem",
    "reviewflag": "bookings_reviewflag",
    "servicerecord": "bookings_servicerecord",
}
ORDER = ["loggertoken", "usagesession", "reviewflag", "billableitem", "servicerecord", "usageevent"]


def _tables(schema_editor) -> set[str]:
    with schema_editor.connection.cursor() as cursor:
        return set(schema_editor.connection.introspection.table_names(cursor))


def _rename_indexes(schema_editor, model) -> None:
    """Give the moved table's indexes the names the model declares (they carried the old table's)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    for index in model._meta.indexes:
        if index.name in found:
            continue
        columns = [model._meta.get_field(name.lstrip("-")).column for name in index.fields]
        old = [name for name, info in found.items() if info.get("index") and not info.get("unique")
               and not info.get("primary_key") and list(info.get("columns") or []) == columns
               and name.startswith("bookings_")]
        if len(old) == 1:
            schema_editor.rename_index(model, models.Index(fields=index.fields, name=old[0]), index)


def move_or_create(apps, schema_editor):
    present = _tables(schema_editor)
    moved = [apps.get_model("usage", name) for name in ORDER]
    if all(OLD_TABLES[name] in present for name in ORDER):   # a database of before the split
        for model in moved:
            schema_editor.alter_db_table(model, OLD_TABLES[model._meta.model_name], model._meta.db_table)
            _rename_indexes(schema_editor, model)
    else:
        for model in moved:
            schema_editor.create_model(model)


def drop_tables(apps, schema_editor):
    for name in reversed(ORDER):
        schema_editor.delete_model(apps.get_model("usage", name))


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('bookings', '0001_squashed_0006_lean_indexes'),
        ('catalog', '0004_percent_labels'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='LoggerToken',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=100, verbose_name='name')),
                    ('prefix', models.CharField(max_length=16)),
                    ('digest', models.CharField(max_length=64, unique=True)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('last_seen_at', models.DateTimeField(blank=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='logger_tokens', to='catalog.instrument')),
                ],
                options={
                    'ordering': ['-created_at'],
                },
            ),
            migrations.CreateModel(
                name='UsageSession',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('start', models.DateTimeField(blank=True, null=True, verbose_name='start')),
                    ('end', models.DateTimeField(blank=True, null=True, verbose_name='end')),
                    ('source', models.CharField(choices=[('logger', 'Instrument logger'), ('checkin', 'Check-in / check-out'), ('import', 'Logbook import'), ('manual', 'Manual correction')], max_length=10, verbose_name='source')),
                    ('external_ref', models.CharField(blank=True, max_length=100, null=True)),
                    ('samples', models.PositiveIntegerField(default=0, verbose_name='samples')),
                    ('auto_closed', models.BooleanField(default=False, verbose_name='closed by the platform')),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('updated_at', models.DateTimeField(auto_now=True)),
                    ('booking', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='usage_sessions', to='bookings.booking')),
                    ('instrument', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='usage_sessions', to='catalog.instrument')),
                    ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='usage_sessions', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'ordering': ['start', 'id'],
                },
            ),
            migrations.CreateModel(
                name='ReviewFlag',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('kind', models.CharField(choices=[('overrun', 'Overrun'), ('early_finish', 'Early finish'), ('unbooked', 'Unbooked use'), ('open_session', 'Session left open'), ('no_show', 'No-show')], max_length=15)),
                    ('detail', models.CharField(blank=True, max_length=300)),
                    ('state', models.CharField(choices=[('open', 'Open'), ('accepted', 'Accepted'), ('corrected', 'Corrected'), ('waived', 'Waived')], default='open', max_length=10)),
                    ('resolved_at', models.DateTimeField(blank=True, null=True)),
                    ('reason', models.TextField(blank=True, max_length=2000)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('booking', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.booking')),
                    ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='review_flags', to='catalog.instrument')),
                    ('resolved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('session', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='usage.usagesession')),
                ],
                options={
                    'ordering': ['-created_at'],
                },
            ),
            migrations.CreateModel(
                name='BillableItem',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('is_internal', models.BooleanField()),
                    ('kind', models.CharField(choices=[('booking', 'Booked use'), ('no_show', 'No-show'), ('late_cancel', 'Late cancellation'), ('unbooked', 'Unbooked use')], max_length=12)),
                    ('charge_mode', models.CharField(max_length=12)),
                    ('unit', models.CharField(choices=[('hour', 'hour'), ('sample', 'sample'), ('use', 'use')], max_length=8)),
                    ('quantity', models.PositiveIntegerField()),
                    ('booked_minutes', models.PositiveIntegerField(default=0)),
                    ('used_minutes', models.PositiveIntegerField(default=0)),
                    ('samples', models.PositiveIntegerField(default=0)),
                    ('service_start', models.DateTimeField()),
                    ('service_end', models.DateTimeField()),
                    ('state', models.CharField(choices=[('open', 'Open'), ('waived', 'Waived'), ('billed', 'Billed')], default='open', max_length=8)),
                    ('corrected', models.BooleanField(default=False, help_text='Set by a lab manager; reconciliation keeps it.')),
                    ('note', models.CharField(blank=True, max_length=500)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('booking', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='billable_item', to='bookings.booking')),
                    ('instrument', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='billable_items', to='catalog.instrument')),
                    ('lab', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='billable_items', to='accounts.lab')),
                    ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='billable_items', to=settings.AUTH_USER_MODEL)),
                    ('session', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='billable_item', to='usage.usagesession')),
                ],
                options={
                    'ordering': ['service_start', 'id'],
                },
            ),
            migrations.CreateModel(
                name='ServiceRecord',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('way', models.CharField(choices=[('use', 'Use of the instrument'), ('technical', 'Technical service'), ('sample', 'Sample submission'), ('remote', 'Remote'), ('other', 'Other')], default='use', max_length=10)),
                    ('is_internal', models.BooleanField()),
                    ('direction', models.CharField(choices=[('research', 'Research'), ('development', 'Development'), ('teaching', 'Teaching'), ('other', 'Other')], default='research', max_length=12)),
                    ('project', models.CharField(blank=True, max_length=200)),
                    ('funding_programme', models.CharField(blank=True, max_length=200)),
                    ('start', models.DateTimeField()),
                    ('end', models.DateTimeField()),
                    ('hours', models.DecimalField(decimal_places=2, max_digits=10)),
                    ('samples', models.PositiveIntegerField(default=0)),
                    ('fee', models.DecimalField(blank=True, decimal_places=2, max_digits=13, null=True)),
                    ('rating', models.PositiveSmallIntegerField(blank=True, null=True)),
                    ('rated_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('applicant_organization', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.organization')),
                    ('instrument', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='service_records', to='catalog.instrument')),
                    ('item', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='service_record', to='usage.billableitem')),
                    ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='service_records', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'ordering': ['start', 'id'],
                    'indexes': [models.Index(fields=['instrument', 'start'], name='usage_servi_instrum_04b70c_idx'), models.Index(fields=['start'], name='usage_servi_start_fd1c53_idx')],
                    'constraints': [models.CheckConstraint(condition=models.Q(('rating__isnull', True), models.Q(('rating__gte', 1), ('rating__lte', 5)), _connector='OR'), name='service_record_rating_range')],
                },
            ),
            migrations.CreateModel(
                name='UsageEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('event_id', models.CharField(max_length=100)),
                    ('kind', models.CharField(max_length=10)),
                    ('session_ref', models.CharField(max_length=100)),
                    ('occurred_at', models.DateTimeField()),
                    ('payload', models.JSONField(default=dict)),
                    ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_events', to='catalog.instrument')),
                ],
                options={
                    'constraints': [models.UniqueConstraint(fields=('instrument', 'event_id'), name='usage_event_once')],
                },
            ),
            migrations.AddIndex(
                model_name='usagesession',
                index=models.Index(fields=['instrument', 'start'], name='usage_usage_instrum_a67b8d_idx'),
            ),
            migrations.AddIndex(
                model_name='usagesession',
                index=models.Index(fields=['end'], name='usage_usage_end_dedce0_idx'),
            ),
            migrations.AddConstraint(
                model_name='usagesession',
                constraint=models.UniqueConstraint(fields=('instrument', 'external_ref'), name='usage_session_ref_unique'),
            ),
            migrations.AddConstraint(
                model_name='usagesession',
                constraint=models.CheckConstraint(condition=models.Q(('end__isnull', True), ('start__isnull', True), ('start__lte', models.F('end')), _connector='OR'), name='usage_session_order'),
            ),
            migrations.AddIndex(
                model_name='reviewflag',
                index=models.Index(fields=['instrument', 'state'], name='usage_revie_instrum_661568_idx'),
            ),
            migrations.AddConstraint(
                model_name='reviewflag',
                constraint=models.UniqueConstraint(condition=models.Q(('booking__isnull', False)), fields=('kind', 'booking'), name='review_flag_once_per_booking'),
            ),
            migrations.AddConstraint(
                model_name='reviewflag',
                constraint=models.UniqueConstraint(condition=models.Q(('session__isnull', False)), fields=('kind', 'session'), name='review_flag_once_per_session'),
            ),
            migrations.AddIndex(
                model_name='billableitem',
                index=models.Index(fields=['service_start'], name='usage_billa_service_7049f7_idx'),
            ),
            migrations.AddIndex(
                model_name='billableitem',
                index=models.Index(fields=['instrument', 'service_start'], name='usage_billa_instrum_321865_idx'),
            ),
            migrations.AddIndex(
                model_name='billableitem',
                index=models.Index(fields=['state', 'service_start'], name='usage_billa_state_47c316_idx'),
            ),
            migrations.AddConstraint(
                model_name='billableitem',
                constraint=models.CheckConstraint(condition=models.Q(('booking__isnull', False), ('session__isnull', False), _connector='OR'), name='billable_item_has_source'),
            ),
        ]),
        migrations.RunPython(move_or_create, drop_tables),
    ]
