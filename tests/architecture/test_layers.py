"""Apps depend downward only: in imports, in foreign keys, in migrations (see layers.py for the order).

Each check fails naming the offending line, field or migration, so a newcomer who adds an upward
edge learns at once where the code should go instead (an extension point the lower app declares).
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db.migrations.loader import MigrationLoader

from tests.architecture.layers import LABELS, RANKS, product_files, upward_imports

OURS = {label: app for app, label in LABELS.items()}


def _app_of_label(label: str) -> str | None:
    return OURS.get(label)


def _allowed(importer: str, imported: str | None) -> bool:
    return imported is None or importer == imported or RANKS[imported] < RANKS[importer]


def upward_foreign_keys() -> list[str]:
    found = []
    for model in apps.get_models(include_auto_created=True):
        owner = _app_of_label(model._meta.app_label)
        if owner is None:
            continue
        for field in model._meta.get_fields(include_hidden=True):
            if not field.is_relation or field.auto_created or field.related_model is None:
                continue
            if getattr(field, "swappable_setting", None) == "AUTH_USER_MODEL":
                continue   # "the user model" is Django's contract, open to every app
            target = _app_of_label(field.related_model._meta.app_label)
            if not _allowed(owner, target):
                found.append(f"{model._meta.label}.{field.name} -> {field.related_model._meta.label}")
    return found


def upward_migration_dependencies() -> list[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    found = []
    for (label, name), migration in loader.disk_migrations.items():
        owner = _app_of_label(label)
        if owner is None:
            continue
        edges = [(dependency, owner) for dependency in migration.dependencies]
        # run_before = [(app, name)] makes that migration depend on this one.
        edges += [((label, name), _app_of_label(other[0])) for other in getattr(migration, "run_before", [])]
        for dependency, dependent in edges:
            # swappable_dependency(settings.AUTH_USER_MODEL) carries the setting's value
            if getattr(dependency, "setting", None) == settings.AUTH_USER_MODEL or dependent is None:
                continue
            target = _app_of_label(dependency[0])
            if not _allowed(dependent, target):
                found.append(f"{label}.{name} -> {dependency[0]}.{dependency[1]}")
    return found


def test_no_app_imports_an_app_above_it_or_beside_it():
    assert [str(edge) for edge in upward_imports(product_files())] == []


def test_no_foreign_key_points_to_an_app_above():
    assert upward_foreign_keys() == []


def test_no_migration_depends_on_an_app_above():
    assert upward_migration_dependencies() == []


def test_the_migration_graph_has_no_cycle_and_one_leaf_per_app():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    loader.graph.ensure_not_cyclic()
    leaves = loader.graph.leaf_nodes()
    for label in OURS:
        assert len([node for node in leaves if node[0] == label]) <= 1, label


def test_the_import_check_catches_an_upward_and_a_sideways_import():
    files = {
        "catalog/views.py": "from billing.queries import fee_standard\n",
        "bookings/services.py": "def f():\n    from submissions import models\n",
        "usage/services.py": "from bookings.models import Booking\nfrom instrumentshare.core.errors import Invalid\n",
        "instrumentshare/core/text.py": "from . import errors\nfrom ..accounts import queries\n",
    }
    found = sorted(str(edge) for edge in upward_imports(files))
    assert found == [
        "bookings/services.py:2 bookings -> submissions (submissions)",
        "catalog/views.py:1 catalog -> billing (billing.queries)",
        "instrumentshare/core/text.py:2 core -> accounts (instrumentshare.accounts)",
    ]
