"""Opening hours are local wall-clock times: across a DST change their UTC hours move."""

import datetime as dt
import zoneinfo

import pytest

from bookings import availability, services
from tests.bookings.conftest import make_instrument

pytestmark = pytest.mark.django_db
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
DAILY_9_TO_17 = [(day, 9 * 60, 17 * 60) for day in range(7)]


def test_opening_hours_follow_the_dst_change_in_berlin(world):
    instrument = make_instrument(world, name="Berlin SEM", zone="Europe/Berlin", hours=DAILY_9_TO_17)
    # 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET.
    start = dt.datetime(2026, 10, 24, tzinfo=BERLIN)
    now = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    free = availability.free_intervals(instrument, start, start + dt.timedelta(days=2), now=now)
    utc = dt.UTC
    assert free == [
        (dt.datetime(2026, 10, 24, 7, tzinfo=utc), dt.datetime(2026, 10, 24, 15, tzinfo=utc)),  # CEST = UTC+2
        (dt.datetime(2026, 10, 25, 8, tzinfo=utc), dt.datetime(2026, 10, 25, 16, tzinfo=utc)),  # CET = UTC+1
    ]


def test_a_booking_on_the_local_grid_across_the_spring_change(world):
    instrument = make_instrument(world, name="Berlin NMR", zone="Europe/Berlin", hours=[(d, 0, 1440) for d in range(7)],
                                 policy={"slot_minutes": 60, "max_minutes": 600})
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST. 01:00–04:00 local is two real hours.
    start = dt.datetime(2026, 3, 29, 1, tzinfo=BERLIN)
    end = dt.datetime(2026, 3, 29, 4, tzinfo=BERLIN)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start, end=end,
                                      purpose="overnight run", now=now)
    assert booking.end - booking.start == dt.timedelta(hours=2)
    assert booking.start.astimezone(BERLIN).hour == 1 and booking.end.astimezone(BERLIN).hour == 4


def test_shanghai_times_are_stored_in_utc(world):
    instrument = make_instrument(world, name="上海时区")
    start = dt.datetime(2026, 12, 8, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="x",
                                      now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    booking.refresh_from_db()
    assert booking.start.astimezone(dt.UTC).hour == 2


def test_chinese_public_holidays_close_when_the_policy_says_so(world):
    instrument = make_instrument(world, name="国庆关闭", policy={"closed_on_public_holidays": True})
    now = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
    national_day_week = availability.free_intervals(
        instrument, dt.datetime(2026, 10, 1, tzinfo=shanghai), dt.datetime(2026, 10, 8, tzinfo=shanghai), now=now)
    assert national_day_week == []
    ordinary = availability.free_intervals(
        instrument, dt.datetime(2026, 10, 12, tzinfo=shanghai), dt.datetime(2026, 10, 13, tzinfo=shanghai), now=now)
    assert len(ordinary) == 1
