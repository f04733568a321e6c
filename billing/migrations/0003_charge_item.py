"""A usage charge's billable item, now in the usage app.

A database of before the split has the column and its constraint already (the table it points to was
renamed by usage's 0001): only the migration state learns of them. A new database gets them created.
"""

import django.db.models.deletion
from django.db import migrations, models

ITEM = models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                            related_name="charge", to="usage.billableitem")
HAS_ITEM = models.CheckConstraint(
    condition=models.Q(models.Q(("item__isnull", False), ("kind", "usage")), models.Q(("kind", "usage"), _negated=True),
                       _connector="OR"),
    name="usage_charge_has_item")


def _has_column(schema_editor) -> bool:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        return any(column.name == "item_id"
                   for column in connection.introspection.get_table_description(cursor, "billing_charge"))


def add_if_missing(apps, schema_editor):
    if _has_column(schema_editor):
        return
    charge = apps.get_model("billing", "Charge")
    schema_editor.add_field(charge, charge._meta.get_field("item"))
    schema_editor.add_constraint(charge, HAS_ITEM)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0001_squashed_0002_warn_label"),
        ("usage", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AddField(model_name="charge", name="item", field=ITEM),
            migrations.AddConstraint(model_name="charge", constraint=HAS_ITEM),
        ]),
        migrations.RunPython(add_if_missing, migrations.RunPython.noop),
    ]
