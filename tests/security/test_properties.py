"""Property-based: arbitrary time ranges, zones and policies thrown at availability and booking.
Nothing but the domain errors may come out, and no two active bookings ever overlap."""

import datetime as dt
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings import availability, services
from bookings.models import Booking
from catalog import services as catalog_services
from instrumentshare.core.errors import DomainError
from tests.bookings.conftest import make_instrument

ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "UTC",
         "America/St_Johns", "Asia/Kathmandu"]
BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)

policies = st.fixed_dictionaries({
    "slot_minutes": st.sampled_from([5, 10, 15, 30, 60, 90]),
    "min_minutes": st.integers(5, 240),
    "max_minutes": st.integers(240, 2880),
    "min_notice_minutes": st.integers(0, 3000),
    "horizon_days": st.integers(1, 200),
    "buffer_minutes": st.integers(0, 120),
})
hours = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1439), st.integers(1, 1440))
                 .filter(lambda r: r[1] < r[2]), max_size=6)
moments = st.integers(-2 * 24 * 60, 120 * 24 * 60).map(lambda m: BASE + dt.timedelta(minutes=m))
spans = st.integers(-600, 3000).map(lambda m: dt.timedelta(minutes=m))


def _non_overlapping(rules):
    chosen = []
    for weekday, start, end in sorted(rules):
        if all(w != weekday or e <= start or end <= s for w, s, e in chosen):
            chosen.append((weekday, start, end))
    return chosen


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(zone=st.sampled_from(ZONES), policy=policies, rules=hours,
       requests=st.lists(st.tuples(moments, spans, st.sampled_from(ZONES)), min_size=1, max_size=8))
def test_availability_and_booking_never_fail_unexpectedly_and_never_overlap(world, zone, policy, rules, requests):
    # Hypothesis reuses the fixture's world across examples: one instrument, reset each time.
    Booking.objects.all().delete()
    if not hasattr(world, "prop_instrument"):
        world.prop_instrument = make_instrument(world, name="prop", asset_number="PROP-1")
    instrument = world.prop_instrument
    catalog_services.update_instrument(actor=world.manager, instrument_id=instrument.pk, time_zone=zone)
    catalog_services.update_policy(actor=world.manager, instrument_id=instrument.pk, **policy)
    catalog_services.set_opening_hours(actor=world.manager, instrument_id=instrument.pk,
                                       rules=_non_overlapping(rules))
    instrument.refresh_from_db()
    instrument.policy.refresh_from_db()
    for start, length, asked_zone in requests:
        local_start = start.astimezone(zoneinfo.ZoneInfo(asked_zone))
        free = availability.free_intervals(instrument, local_start, local_start + abs(length) + dt.timedelta(
            minutes=1), now=NOW)
        assert all(a < b for a, b in free)
        assert all(earlier[1] <= later[0] for earlier, later in zip(free, free[1:], strict=False))
        try:
            services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=local_start,
                                    end=local_start + length, purpose="property", now=NOW)
        except DomainError:
            pass
    active = list(Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES).order_by("start"))
    for earlier, later in zip(active, active[1:], strict=False):
        assert earlier.blocked_until <= later.start
    for booking in active:
        assert booking.start < booking.end
