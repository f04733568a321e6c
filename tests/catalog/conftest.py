"""Catalog fixtures: instruments made the way a lab manager makes them, through the services."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from catalog import services
from catalog.reference import load_categories

_serial = itertools.count(1)


def record_fields(**overrides) -> dict:
    """A complete national-platform record; tests override what they are about."""
    number = next(_serial)
    fields = {
        "name_zh": f"测试仪器{number}", "name_en": f"Test instrument {number}", "asset_number": f"T-{number:05d}",
        "category_id": "010102", "subject_code": "430", "funded_central": True, "original_value": Decimal("300000"),
        "country": "日本", "manufacturer": "Hitachi High-Tech", "model_number": "SU8010",
        "purchase_date": dt.date(2024, 3, 4), "acceptance_date": dt.date(2024, 3, 8),
        "specifications": "分辨率 1 nm", "main_functions": "形貌观察", "service_content": "送样测试",
        "fee_standard": "200 元/小时", "district": "崂山区", "address": "松岭路 1 号", "room": "101",
        "contact_name": "张老师", "contact_phone": "0532-00000000", "contact_email": "lab@example.org",
    }
    fields.update(overrides)
    return fields


@pytest.fixture(autouse=True)
def _categories(request):
    """The category table comes from a data migration; a transactional test elsewhere may have flushed it."""
    if "db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
        load_categories()


@pytest.fixture
def make_instrument(world):
    """``make_instrument(lab=None, publish=True, share_mode="external", **fields)``; lab A by default."""

    def make(lab=None, *, publish=True, share_mode="external", published_on: dt.date | None = None, **overrides):
        lab = lab or world.lab_a
        manager = world.manager if lab == world.lab_a else world.other_manager
        instrument = services.create_instrument(
            actor=manager, lab=lab, share_mode=share_mode, opening_hours=[(d, 510, 1050) for d in range(5)],
            **record_fields(**overrides),
        )
        if publish:
            # Listed a few days after purchase, as the rule wants, unless the test says otherwise.
            published_on = published_on or (instrument.purchase_date or dt.date.today()) + dt.timedelta(days=5)
            now = dt.datetime.combine(published_on, dt.time(10), tzinfo=dt.timezone(dt.timedelta(hours=8)))
            services.publish(actor=manager, instrument_id=instrument.pk, now=now)
        instrument.refresh_from_db()
        return instrument

    return make


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Argon2 is deliberately slow; these tests are about instruments, not passwords."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
