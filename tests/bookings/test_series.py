"""Recurring bookings through the services: the rule, its checks per occurrence, dry run, partial booking,
cancellation of one, this and following, or all; in Shanghai and across a DST change in Berlin."""

import datetime as dt
import zoneinfo

import pytest

from bookings import services
from bookings.models import Booking, BookingSeries, Notification
from bookings.services.series import MAX_OCCURRENCES, Rule, expand
from catalog import services as catalog_services
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from tests.bookings.conftest import make_instrument

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
# A fixed moment: two weeks before the first occurrences below, a month before Europe's clocks go forward
# (Sunday 2027-03-28); no test depends on the day it runs.
NOW = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)
TUESDAY = dt.datetime(2027, 3, 16, 9, 0, tzinfo=SHANGHAI)


def weekly(world, instrument, start, *, hours=2, user=None, now=NOW, **rule):
    rule = {"frequency": "WEEKLY", "count": 4, **rule}
    return services.create_series(user=user or world.researcher, instrument_id=instrument.pk, start=start,
                                  end=start + dt.timedelta(hours=hours), purpose="group meeting slot", now=now,
                                  **rule)


def single(user, instrument, start, hours=2):
    return services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                   end=start + dt.timedelta(hours=hours), purpose="one-off", now=NOW)


def test_a_weekly_series_keeps_its_wall_clock_time_across_a_dst_change_in_berlin(world):
    instrument = make_instrument(world, zone="Europe/Berlin", name="Berlin SEM")
    first = dt.datetime(2027, 3, 16, 9, 0, tzinfo=BERLIN)
    result = weekly(world, instrument, first)
    assert [o.code for o in result.occurrences] == ["", "", "", ""]
    local = [o.start.astimezone(BERLIN) for o in result.occurrences]
    assert [(t.date().isoformat(), t.hour, t.minute) for t in local] == [
        ("2027-03-16", 9, 0), ("2027-03-23", 9, 0), ("2027-03-30", 9, 0), ("2027-04-06", 9, 0)]
    # In UTC the slot moves by the hour the clocks moved: 08:00Z in winter time, 07:00Z in summer time.
    assert [o.start.hour for o in result.occurrences] == [8, 8, 7, 7]
    assert all(o.end - o.start == dt.timedelta(hours=2) for o in result.occurrences)
    assert result.rrule == "FREQ=WEEKLY;COUNT=4"


def test_a_local_time_skipped_by_the_clock_change_is_read_with_the_offset_before_the_gap():
    # RFC 5545 3.3.5: 02:30 on the night Berlin skips from 02:00 to 03:00 is 03:30 summer time.
    start = dt.datetime(2027, 3, 27, 2, 30, tzinfo=BERLIN)
    times = expand(Rule("DAILY", 1, (), 2, None), first_start=start, duration=dt.timedelta(minutes=30), zone=BERLIN)
    assert [t.astimezone(BERLIN).strftime("%d %H:%M %Z") for t, _ in times] == ["27 02:30 CET", "28 03:30 CEST"]


def test_a_series_of_weekdays_books_each_occurrence_as_an_ordinary_booking(world, django_capture_on_commit_callbacks):
    instrument = make_instrument(world)
    with django_capture_on_commit_callbacks(execute=True):
        result = weekly(world, instrument, TUESDAY, weekdays=["TU", "TH"], count=6)
    series = result.series
    assert series is not None and not result.conflicts
    assert result.rrule == series.rrule == "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=6"
    rows = list(series.occurrences.order_by("start"))
    assert [b.start.astimezone(SHANGHAI).strftime("%a %d %H:%M") for b in rows] == [
        "Tue 16 09:00", "Thu 18 09:00", "Tue 23 09:00", "Thu 25 09:00", "Tue 30 09:00", "Thu 01 09:00"]
    assert {b.state for b in rows} == {Booking.State.CONFIRMED}
    assert [o.booking_id for o in result.occurrences] == [b.pk for b in rows]
    # Each occurrence is audited and invited as a single booking; the series has its own record.
    assert AuditEvent.objects.filter(action="booking.created_confirmed",
                                     target_id__in=[str(b.pk) for b in rows]).count() == 6
    event = AuditEvent.objects.get(action="booking_series.created", target_id=str(series.pk))
    assert event.after["booking_ids"] == [b.pk for b in rows]
    assert Notification.objects.filter(booking__series=series, kind="invitation").count() == 6


def test_the_dry_run_names_exactly_the_occurrences_that_conflict_and_books_nothing(world):
    instrument = make_instrument(world)
    taken = single(world.other_researcher, instrument, TUESDAY + dt.timedelta(weeks=2, hours=1))
    preview = weekly(world, instrument, TUESDAY, dry_run=True)
    assert [o.code for o in preview.occurrences] == ["", "", "slot_taken", ""]
    assert preview.occurrences[2].conflict["start"] == taken.start.isoformat()
    assert preview.series is None and all(o.booking_id is None for o in preview.occurrences)
    assert [o.state for o in preview.occurrences if o.ok] == ["confirmed"] * 3
    assert BookingSeries.objects.count() == 0
    assert Booking.objects.filter(instrument=instrument).count() == 1
    assert not AuditEvent.objects.filter(action__startswith="booking_series").exists()


def test_a_conflict_books_nothing_unless_the_rest_is_asked_for(world):
    instrument = make_instrument(world)
    single(world.other_researcher, instrument, TUESDAY + dt.timedelta(weeks=1))
    with pytest.raises(Conflict) as refused:
        weekly(world, instrument, TUESDAY)
    assert refused.value.code == "series_conflicts"
    assert [o["code"] for o in refused.value.extra["occurrences"]] == ["", "slot_taken", "", ""]
    assert Booking.objects.filter(instrument=instrument).count() == 1 and not BookingSeries.objects.exists()

    result = weekly(world, instrument, TUESDAY, book_available=True)
    series = result.series
    assert series.occurrences.count() == 3
    assert [item["code"] for item in series.skipped] == ["slot_taken"]
    assert series.skipped[0]["start"] == (TUESDAY + dt.timedelta(weeks=1)).astimezone(dt.UTC).isoformat()


def test_own_booking_in_the_way_is_named_as_mine(world):
    instrument = make_instrument(world)
    mine = single(world.researcher, instrument, TUESDAY + dt.timedelta(weeks=3))
    preview = weekly(world, instrument, TUESDAY, dry_run=True)
    assert preview.occurrences[3].conflict["own_booking_id"] == mine.pk


def test_downtime_and_closed_days_are_checked_per_occurrence(world):
    instrument = make_instrument(world)
    catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk,
                                  start=TUESDAY + dt.timedelta(weeks=1), end=TUESDAY + dt.timedelta(weeks=1, hours=8),
                                  kind="planned", reason="annual service", now=NOW)
    preview = weekly(world, instrument, TUESDAY, frequency="DAILY", count=5, dry_run=True, weekdays=())
    # Tue, Wed, Thu, Fri open; Saturday is closed (opening hours are Monday to Friday).
    assert [o.code for o in preview.occurrences] == ["", "", "", "", "closed"]
    preview = weekly(world, instrument, TUESDAY, dry_run=True)
    assert [o.code for o in preview.occurrences] == ["", "downtime", "", ""]


def test_the_weekly_quota_counts_the_series_own_occurrences(world):
    instrument = make_instrument(world, policy={"max_hours_per_user_week": 4})
    preview = weekly(world, instrument, TUESDAY, frequency="DAILY", count=3, dry_run=True)
    assert [o.code for o in preview.occurrences] == ["", "", "quota_exceeded"]


def test_approval_applies_per_occurrence(world):
    instrument = make_instrument(world, policy={"approval": "all"})
    result = weekly(world, instrument, TUESDAY, count=2)
    assert {b.state for b in result.series.occurrences.all()} == {Booking.State.PENDING}
    first = result.series.occurrences.order_by("start").first()
    services.approve_booking(actor=world.manager, booking_id=first.pk, now=NOW)
    assert sorted(result.series.occurrences.values_list("state", flat=True)) == ["confirmed", "pending"]


@pytest.mark.parametrize(("rule", "code"), [
    ({"count": MAX_OCCURRENCES + 1}, "too_many_occurrences"),
    ({"count": None, "until": dt.date(2031, 1, 1), "frequency": "DAILY"}, "too_many_occurrences"),
    ({"count": 3, "until": dt.date(2027, 4, 1)}, "count_or_until"),
    ({"count": None}, "count_or_until"),
    ({"count": 20}, "beyond_horizon"),
    ({"frequency": "MONTHLY"}, "invalid_frequency"),
    ({"interval": 0}, "invalid_interval"),
    ({"weekdays": ["XX"]}, "invalid_weekdays"),
    ({"weekdays": ["MO"]}, "first_not_in_rule"),
    ({"count": None, "until": dt.date(2027, 3, 1)}, "until_before_start"),
])
def test_a_series_out_of_bounds_is_refused_whole(world, rule, code):
    instrument = make_instrument(world)
    with pytest.raises(Invalid) as refused:
        weekly(world, instrument, TUESDAY, **rule)
    assert refused.value.code == code
    assert not Booking.objects.exists()


def test_who_may_not_book_at_all_is_refused_once_not_per_occurrence(world):
    instrument = make_instrument(world, policy={"qualification_required": True})
    with pytest.raises(Forbidden) as refused:
        weekly(world, instrument, TUESDAY, dry_run=True)
    assert refused.value.code == "not_qualified"


def test_cancel_one_this_and_following_or_all(world):
    instrument = make_instrument(world)
    series = weekly(world, instrument, TUESDAY, count=5).series
    rows = list(series.occurrences.order_by("start"))
    services.cancel_series(actor=world.researcher, series_id=series.pk, scope="one", booking_id=rows[1].pk, now=NOW)
    cancelled = services.cancel_series(actor=world.researcher, series_id=series.pk, scope="following",
                                       booking_id=rows[3].pk, now=NOW)
    assert [b.pk for b in cancelled] == [rows[3].pk, rows[4].pk]
    states = list(series.occurrences.order_by("start").values_list("state", flat=True))
    assert states == ["confirmed", "cancelled", "confirmed", "cancelled", "cancelled"]
    # "All", once the first has started: the rest is cancelled, what has started stays.
    during_first = rows[0].start + dt.timedelta(minutes=30)
    cancelled = services.cancel_series(actor=world.researcher, series_id=series.pk, scope="all", now=during_first)
    assert [b.pk for b in cancelled] == [rows[2].pk]
    assert series.occurrences.get(pk=rows[0].pk).state == "confirmed"
    event = AuditEvent.objects.filter(action="booking_series.cancelled", target_id=str(series.pk)).last()
    assert event.after == {"scope": "all", "from_booking_id": None, "booking_ids": [rows[2].pk]}
    assert Notification.objects.filter(booking__series=series, kind="cancellation").count() == 4


def test_a_late_cancellation_counts_per_occurrence(world):
    instrument = make_instrument(world, policy={"cancellation_window_hours": 48})
    series = weekly(world, instrument, TUESDAY, count=3).series
    just_before = TUESDAY.astimezone(dt.UTC) - dt.timedelta(hours=24)
    services.cancel_series(actor=world.researcher, series_id=series.pk, scope="all", now=just_before)
    late = dict(series.occurrences.values_list("start", "late_cancellation"))
    assert sorted(late.values()) == [False, False, True]
    assert late[TUESDAY.astimezone(dt.UTC)] is True


def test_the_lab_cancels_a_series_with_a_reason_and_others_do_not_see_it(world):
    instrument = make_instrument(world)
    series = weekly(world, instrument, TUESDAY, count=2).series
    with pytest.raises(NotFound):
        services.cancel_series(actor=world.other_researcher, series_id=series.pk, scope="all", now=NOW)
    with pytest.raises(NotFound):
        services.cancel_series(actor=world.other_manager, series_id=series.pk, scope="all", now=NOW)
    with pytest.raises(Invalid) as refused:
        services.cancel_series(actor=world.manager, series_id=series.pk, scope="all", now=NOW)
    assert refused.value.code == "reason_required"
    assert set(series.occurrences.values_list("state", flat=True)) == {"confirmed"}
    services.cancel_series(actor=world.manager, series_id=series.pk, scope="all", reason="course moved", now=NOW)
    assert set(series.occurrences.values_list("state", flat=True)) == {"cancelled"}
