"""Opening hours materialized as UTC ranges (catalog.windows), GiST-indexed on PostgreSQL."""


import django.db.models.deletion
from django.db import migrations, models


def _gist_index(apps, schema_editor):
    """PostgreSQL only: the windows that overlap a range of one instrument, found through the index."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        "CREATE INDEX opening_window_range_gist ON catalog_openingwindow USING gist "
        "(instrument_id, tstzrange(start, \"end\", '[)'))"
    )


def _drop_gist_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS opening_window_range_gist")


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0006_constraint_messages'),
    ]

    operations = [
        migrations.CreateModel(
            name='OpeningWindowCover',
            fields=[
                ('instrument', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='catalog.instrument')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('refreshed_at', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='OpeningWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='catalog.instrument')),
            ],
            options={
                'ordering': ['instrument', 'start'],
                'constraints': [models.CheckConstraint(condition=models.Q(('start__lt', models.F('end'))), name='opening_window_order')],
            },
        ),
        migrations.RunPython(_gist_index, _drop_gist_index),
    ]
