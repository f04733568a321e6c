"""Reference tables shipped as data: instrument categories and GB/T 13745 subject codes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

DATA_DIR = Path(__file__).resolve().parent / "data"


@cache
def categories() -> list[dict]:
    """The 2006 national classification of large instruments (copied from unpc/srms nrii class.php)."""
    return json.loads((DATA_DIR / "instrument_categories.json").read_text(encoding="utf-8"))


@cache
def subject_codes() -> dict[str, dict]:
    rows = json.loads((DATA_DIR / "subject_codes.json").read_text(encoding="utf-8"))
    return {row["code"]: row for row in rows}


def validate_subject_code(value: str) -> None:
    if value and value not in subject_codes():
        raise ValidationError(_("%(value)s is not a first-level GB/T 13745 subject code."), params={"value": value})


def category_level(code: str) -> int:
    if code.endswith("0000"):
        return 1
    if code.endswith("00"):
        return 2
    return 3


def load_categories(category_model=None) -> int:
    """Insert the shipped category table (idempotent). Used by the data migration and after a test flush."""
    if category_model is None:
        from catalog.models import Category as category_model
    rows = categories()
    existing = set(category_model.objects.values_list("code", flat=True))
    created = 0
    for level in (1, 2, 3):
        batch = [
            category_model(code=row["code"], name_zh=row["name_zh"], name_en=row["name_en"], parent_id=row["parent"],
                           level=level)
            for row in rows
            if category_level(row["code"]) == level and row["code"] not in existing
        ]
        category_model.objects.bulk_create(batch)
        created += len(batch)
    return created
