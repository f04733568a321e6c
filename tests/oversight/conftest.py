"""A small city for the oversight tests: three instruments used in March–May 2025, reconciled and billed.

Made through the services (bookings, usage sessions, reconciliation, rate cards, closing), as in
``tests/bookings/test_usage.py``. 2025 is a past year, so quotas are not pro rata. Times are
Shanghai local. The hand computation of every figure is in ``test_statistics.py``.

- ``sem``  (lab A, org A, general purpose, warm-up 15 + post-processing 15 min per session), priced:
  - B1 researcher (internal)        Mon 3 Mar 10:00–12:00 booked, used 10:00–12:00
  - B2 other_researcher (external)  Tue 4 Mar 10:00–12:00 booked, used 10:00–11:30
  - B3 company_user (external)      Wed 5 Mar 10:00–12:00 booked, no-show
  - company_user unbooked           Thu 10 Apr 14:00–15:00
- ``nmr``  (lab A, org A, special purpose, post-processing 30 min), not priced:
  - B4 researcher                   Thu 6 Mar 09:00–13:00 booked, used 09:00–13:30
  - manager unbooked                Fri 2 May 10:00–11:00
- ``ms``   (lab B, org B, general purpose, no allowance), not priced:
  - B5 researcher (external to B)   Mon 3 Mar 14:00–16:00 booked, used 14:00–16:00
  - B6 other_researcher (internal)  Tue 4 Mar 14:00–15:00 booked, used 14:00–15:00
Ratings: B2 4, the unbooked sem session 5, B5 3. A voucher pays half of the company's fees.
Districts: org A and sem, nmr in 崂山区; org B and ms in 市南区; the company in 城阳区.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

import pytest

from billing import services as billing
from billing.services import closing
from bookings import services as bookings
from bookings.models import Booking
from catalog.models import Instrument
from instrumentshare.accounts.models import Organization
from tests.bookings.conftest import make_instrument
from usage.models import ServiceRecord, UsageSession
from usage.services.reconcile import reconcile

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
YEAR = 2025
RATES = [
    {"user_class": "internal", "unit": "hour", "price": "100.00"},
    {"user_class": "academic", "unit": "hour", "price": "200.00"},
    {"user_class": "industry", "unit": "hour", "price": "300.00"},
]


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(YEAR, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class City:
    sem: Instrument
    nmr: Instrument
    ms: Instrument
    bookings: dict


def _instrument(world, name, *, lab, manager, purpose, warmup=0, post=0, **fields) -> Instrument:
    instrument = make_instrument(world, name=name, lab=lab, manager=manager, asset_number=f"OV-{name}",
                                 purpose=purpose, purchase_date=dt.date(2024, 1, 10), **fields)
    Instrument.objects.filter(pk=instrument.pk).update(warmup_minutes=warmup, postprocessing_minutes=post)
    instrument.refresh_from_db()
    return instrument


def _book(user, instrument, start, hours: float) -> Booking:
    return bookings.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                   end=start + dt.timedelta(hours=hours), purpose="oversight test",
                                   now=start - dt.timedelta(days=2))


def _use(instrument, user, start, minutes: int, ref: str) -> UsageSession:
    return UsageSession.objects.create(instrument=instrument, user=user, source="logger", external_ref=ref,
                                       start=start, end=start + dt.timedelta(minutes=minutes))


def build_city(world) -> City:
    for organization, district in ((world.org_a, "崂山区"), (world.org_b, "市南区"), (world.company, "城阳区")):
        Organization.objects.filter(pk=organization.pk).update(district=district)
    sem = _instrument(world, "电镜", lab=world.lab_a, manager=world.manager, purpose="general", warmup=15, post=15,
                      district="崂山区")
    nmr = _instrument(world, "核磁", lab=world.lab_a, manager=world.manager, purpose="special", post=30,
                      district="崂山区")
    ms = _instrument(world, "质谱", lab=world.lab_b, manager=world.other_manager, purpose="general", district="市南区")
    made = {
        "B1": _book(world.researcher, sem, at(3, 3, 10), 2),
        "B2": _book(world.other_researcher, sem, at(3, 4, 10), 2),
        "B3": _book(world.company_user, sem, at(3, 5, 10), 2),
        "B4": _book(world.researcher, nmr, at(3, 6, 9), 4),
        "B5": _book(world.researcher, ms, at(3, 3, 14), 2),
        "B6": _book(world.other_researcher, ms, at(3, 4, 14), 1),
    }
    _use(sem, world.researcher, at(3, 3, 10), 120, "s1")
    _use(sem, world.other_researcher, at(3, 4, 10), 90, "s2")
    _use(sem, world.company_user, at(4, 10, 14), 60, "s3")
    _use(nmr, world.researcher, at(3, 6, 9), 270, "n1")
    _use(nmr, world.manager, at(5, 2, 10), 60, "n2")
    _use(ms, world.researcher, at(3, 3, 14), 120, "m1")
    _use(ms, world.other_researcher, at(3, 4, 14), 60, "m2")
    reconcile(since=at(3, 1, 0), now=at(6, 1, 0))
    ServiceRecord.objects.filter(item__booking=made["B2"]).update(rating=4)
    ServiceRecord.objects.filter(instrument=sem, item__booking__isnull=True).update(rating=5)
    ServiceRecord.objects.filter(item__booking=made["B5"]).update(rating=3)
    return City(sem=sem, nmr=nmr, ms=ms, bookings=made)


def bill_city(world, city: City) -> None:
    """Price the electron microscope, open accounts, give the company a voucher, close March and April."""
    billing.create_rate_card(actor=None, instrument_id=city.sem.pk, valid_from=dt.date(2025, 1, 1), rates=RATES)
    billing.create_account(actor=world.finance, kind="cost_centre", organization=world.org_a, lab=world.lab_a,
                           number="CC-A", name="Lab A")
    billing.create_account(actor=world.other_finance, kind="cost_centre", organization=world.org_b, lab=world.lab_b,
                           number="CC-B", name="Lab B")
    billing.create_account(actor=None, kind="external", organization=world.company, number="EXT-C", name="Company C")
    billing.issue_voucher(actor=world.bureau, company=world.company, amount=Decimal("10000"), share_percent=50,
                          valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2025, 12, 31))
    closing.close_period(actor=None, month="2025-03", now=at(4, 3, 9))
    closing.close_period(actor=None, month="2025-04", now=at(5, 3, 9))


@pytest.fixture
def city(world) -> City:
    built = build_city(world)
    bill_city(world, built)
    return built
