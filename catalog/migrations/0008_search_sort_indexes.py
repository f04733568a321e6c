"""Indexes in the orders the search sorts by (``catalog.queries.SORTS``), so that a page of a large city is
read in order and stops after its rows instead of sorting every match."""

from django.db import migrations, models

# "Newest first": published ones by publication time, newest first, then drafts. PostgreSQL needs NULLS LAST
# said in the index as in the query; SQLite cannot say it, and puts NULLs last when descending anyway.
NEWEST = {
    "postgresql": "CREATE INDEX IF NOT EXISTS instrument_newest_idx ON catalog_instrument "
                  "(published_at DESC NULLS LAST, created_at DESC, id DESC)",
    "sqlite": "CREATE INDEX IF NOT EXISTS instrument_newest_idx ON catalog_instrument "
              "(published_at DESC, created_at DESC, id DESC)",
}


def create_newest(apps, schema_editor):
    statement = NEWEST.get(schema_editor.connection.vendor)
    if statement:
        schema_editor.execute(statement)


def drop_newest(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS instrument_newest_idx")


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("catalog", "0007_opening_windows"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="instrument",
            index=models.Index(fields=["name_zh", "id"], name="instrument_name_idx"),
        ),
        migrations.RunPython(create_newest, drop_newest, elidable=False),
    ]
