"""Load the national instrument classification shipped in catalog/data/."""

from django.db import migrations


def load(apps, schema_editor):
    from catalog.reference import categories

    Category = apps.get_model("catalog", "Category")
    rows = categories()
    levels = {1: [], 2: [], 3: []}
    for row in rows:
        level = 1 if row["parent"] is None else (2 if row["code"].endswith("00") else 3)
        levels[level].append(row)
    for level in (1, 2, 3):
        Category.objects.bulk_create(
            [Category(code=r["code"], name_zh=r["name_zh"], name_en=r["name_en"], parent_id=r["parent"], level=level)
             for r in levels[level]],
            ignore_conflicts=True,
        )


def unload(apps, schema_editor):
    apps.get_model("catalog", "Category").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
