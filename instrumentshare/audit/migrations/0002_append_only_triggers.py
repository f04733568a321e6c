"""The database itself refuses UPDATE and DELETE on audit rows, whatever the client."""

from django.db import migrations

from instrumentshare.audit import triggers


def create_triggers(apps, schema_editor):
    for statement in triggers.create_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    for statement in triggers.drop_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(create_triggers, drop_triggers)]
