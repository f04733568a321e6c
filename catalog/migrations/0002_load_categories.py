"""Load the national instrument classification shipped in catalog/data/."""

from django.db import migrations


def load(apps, schema_editor):
    from catalog.reference import load_categories

    load_categories(apps.get_model("catalog", "Category"))


def unload(apps, schema_editor):
    apps.get_model("catalog", "Category").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
