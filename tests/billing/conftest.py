"""Billing fixtures: accounts for the shared world, a priced instrument, and billable items made directly.

The instrument belongs to lab A (organization A, finance officer ``finance``):
``researcher`` is internal, ``other_researcher`` (organization B) other academic, ``company_user`` industry.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

import pytest

from billing import services
from billing.models import BillingAccount, RateCard
from instrumentshare.accounts import queries as people
from tests.bookings.conftest import make_instrument
from usage.models import BillableItem, ServiceRecord, UsageSession

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MONTH = "2026-10"
_refs = itertools.count(1)

# Prices of the test card, per hour: internal 100, other academic 200, industry 300; per sample 50/80/120.
RATES = [
    {"user_class": "internal", "unit": "hour", "price": "100.00"},
    {"user_class": "academic", "unit": "hour", "price": "200.00"},
    {"user_class": "industry", "unit": "hour", "price": "300.00"},
    {"user_class": "internal", "unit": "sample", "price": "50.00"},
    {"user_class": "academic", "unit": "sample", "price": "80.00"},
    {"user_class": "industry", "unit": "sample", "price": "120.00"},
]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Argon2 costs half a second per user of the shared world; these tests do not test hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process even when REDIS_URL is set (CI's second run), for tests about
    what a task does rather than how it travels (tests/billing/test_close_worker.py does that)."""
    from instrumentshare.celery import app

    saved = {key: app.conf[key] for key in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


def at(day: int, hour: int = 10, month: str = MONTH) -> dt.datetime:
    return dt.datetime(int(month[:4]), int(month[5:7]), day, hour, tzinfo=SHANGHAI)


def after_month(month: str = MONTH) -> dt.datetime:
    """A moment safely after the month, for ``now=``."""
    year, number = int(month[:4]), int(month[5:7])
    return dt.datetime(year + number // 12, number % 12 + 1, 3, 9, tzinfo=SHANGHAI)


def make_item(instrument, user, *, start: dt.datetime, minutes: int = 60, unit: str = "hour", quantity=None,
              kind: str = "unbooked", lab=None, way: str | None = "use", samples: int = 0) -> BillableItem:
    """An item as reconciliation would leave it: a usage session, its billable item, its service record."""
    end = start + dt.timedelta(minutes=max(minutes, 1))
    session = UsageSession.objects.create(instrument=instrument, user=user, start=start, end=end, source="manual",
                                          external_ref=f"test-{next(_refs)}", samples=samples)
    if lab is None:
        lab_ids = sorted(people.member_lab_ids(user))
        lab = lab_ids[0] if lab_ids else None
    item = BillableItem.objects.create(
        session=session, instrument=instrument, user=user,
        lab_id=lab if isinstance(lab, int) or lab is None else lab.pk,
        is_internal=people.is_internal(user, instrument.organization_id), kind=kind, charge_mode="used", unit=unit,
        quantity=minutes if quantity is None else quantity, used_minutes=minutes, samples=samples,
        service_start=start, service_end=end)
    if way is not None:
        ServiceRecord.objects.create(item=item, instrument=instrument, user=user,
                                     applicant_organization=user.organization, way=way, is_internal=item.is_internal,
                                     start=start, end=end, hours=Decimal(minutes) / 60, samples=samples)
    return item


@dataclass
class Billing:
    instrument: object
    card: RateCard
    lab_a: BillingAccount
    lab_b: BillingAccount
    company: BillingAccount


def make_card(instrument, *, valid_from=dt.date(2026, 1, 1), rates=None, **extra) -> RateCard:
    return services.create_rate_card(actor=None, instrument_id=instrument.pk, valid_from=valid_from,
                                     rates=rates or RATES, **extra)


@pytest.fixture
def billing(world) -> Billing:
    instrument = make_instrument(world)
    card = make_card(instrument, minimum_charge="0", assisted_surcharge="40.00")
    lab_a = services.create_account(actor=world.finance, kind="cost_centre", organization=world.org_a,
                                    lab=world.lab_a, number="CC-A-001", name="Lab A cost centre")
    lab_b = services.create_account(actor=world.other_finance, kind="cost_centre", organization=world.org_b,
                                    lab=world.lab_b, number="CC-B-001", name="Lab B cost centre")
    company = services.create_account(actor=None, kind="external", organization=world.company, number="EXT-C",
                                      name="Company C", billing_name="丙公司（开票）",
                                      billing_address="青岛市城阳区 1 号",
                                      tax_number="91370200MA3C000000", contact_name="Zhou",
                                      contact_email="pay@company-c.example")
    return Billing(instrument=instrument, card=card, lab_a=lab_a, lab_b=lab_b, company=company)
