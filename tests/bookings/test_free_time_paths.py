"""Free time has one definition and three ways to compute it: in Python (SQLite, and wherever the
opening windows do not cover the range), in PostgreSQL over the materialized opening windows, and
the benchmarks' raw-limit query (``tests/benchmarks/rawsql.py``). On generated calendars (weekly
rules, exception days, Chinese holidays and make-up days, downtime, buffers, a zone with a DST
change) all three give the same free intervals, and the search's two paths the same instruments."""

from __future__ import annotations

import datetime as dt

import chinese_calendar
import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings import availability, queries
from bookings.models import Booking
from catalog import windows
from catalog.models import Downtime, OpeningException, OpeningRule, OpeningWindow, OpeningWindowCover
from instrumentshare.core.time import SHOWABLE_MAX, SHOWABLE_MIN
from tests.benchmarks.rawsql import FREE_INTERVALS, search_sql
from tests.bookings.conftest import make_instrument
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db

# Pinned: around China's National Day week of 2026 (make-up workdays on Sunday 20 September and
# Saturday 10 October) and Europe's return to winter time (25 October 2026).
NOW = dt.datetime(2026, 9, 18, 2, 0, tzinfo=dt.UTC)
RANGE = (NOW, NOW + dt.timedelta(days=40))
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York"]
QUARTER = st.integers(min_value=0, max_value=96).map(lambda n: n * 15)


@st.composite
def day_hours(draw) -> list[tuple[int, int]]:
    """Up to two non-overlapping spans of one day, in minutes (closing at 24:00 allowed)."""
    points = sorted(set(draw(st.lists(QUARTER, min_size=0, max_size=4))))
    spans = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    return [(a, b) for a, b in spans if a < b and a < 1440]


@st.composite
def calendars(draw) -> dict:
    rules = [(weekday, a, b) for weekday in range(7) for a, b in draw(day_hours())]
    days = [(NOW + dt.timedelta(days=n)).date() for n in range(-1, 42)]
    exceptions = {}
    for day in draw(st.lists(st.sampled_from(days), max_size=6, unique=True)):
        hours = draw(day_hours())
        exceptions[day] = (True, None, None) if not hours else (False, *hours[0])
    # The lab writes China's holidays as closed days and the make-up workdays as open ones, or lets the
    # policy close on public holidays (which the raw query does not know).
    holidays = draw(st.sampled_from(["none", "exceptions", "policy"]))
    if holidays == "exceptions":
        for day in days:
            is_holiday, name = chinese_calendar.get_holiday_detail(day)
            if is_holiday and name:
                exceptions.setdefault(day, (True, None, None))
            elif chinese_calendar.is_workday(day) and day.weekday() >= 5:
                exceptions.setdefault(day, (False, 8 * 60, 17 * 60))
    buffer = draw(st.sampled_from([0, 15, 30, 60]))
    busy, cursor = [], NOW - dt.timedelta(days=1)
    for gap, length, kind in draw(st.lists(st.tuples(st.integers(0, 72 * 4), st.integers(1, 16),
                                                     st.sampled_from(["booking", "cancelled", "downtime"])),
                                           max_size=25)):
        start = cursor + dt.timedelta(minutes=15 * gap)
        end = start + dt.timedelta(minutes=15 * length)
        busy.append((kind, start, end))
        cursor = end + dt.timedelta(minutes=buffer)
    return {"zone": draw(st.sampled_from(ZONES)), "rules": rules, "exceptions": exceptions, "buffer": buffer,
            "holidays": holidays, "busy": busy, "notice": draw(st.sampled_from([0, 60, 24 * 60])),
            "minutes": draw(st.sampled_from([15, 60, 240, 600, 25 * 60, 50 * 60])),
            "range": (NOW + dt.timedelta(hours=draw(st.integers(-24, 24 * 7)),
                                         microseconds=draw(st.sampled_from([0, 1500, 123456, 999]))),
                      NOW + dt.timedelta(hours=draw(st.integers(24 * 8, 24 * 40))))}


def _build(world, calendar: dict):
    instrument = make_instrument(world, name="路径仪器", zone=calendar["zone"], hours=[], policy={
        "buffer_minutes": calendar["buffer"], "min_notice_minutes": calendar["notice"],
        "closed_on_public_holidays": calendar["holidays"] == "policy"})
    OpeningRule.objects.bulk_create([OpeningRule(instrument=instrument, weekday=w, open_minute=a, close_minute=b)
                                     for w, a, b in calendar["rules"]])
    OpeningException.objects.bulk_create([
        OpeningException(instrument=instrument, date=day, closed=closed, open_minute=a, close_minute=b)
        for day, (closed, a, b) in calendar["exceptions"].items()])
    buffer = dt.timedelta(minutes=calendar["buffer"])
    for kind, start, end in calendar["busy"]:
        if kind == "downtime":
            Downtime.objects.create(instrument=instrument, start=start, end=end, reason="维护")
        else:
            Booking.objects.create(instrument=instrument, user=world.researcher, start=start, end=end,
                                   blocked_until=end + buffer, purpose="x",
                                   state="cancelled" if kind == "cancelled" else "confirmed")
    windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
    instrument.refresh_from_db()
    return instrument


def _assert_the_api_answers_the_same_from_both_paths(instrument, start, end, schedule) -> None:
    """The availability API's body as PostgreSQL writes it is, byte for byte, what ninja renders from the
    Python path's answer (ordinary datetimes and ones with milliseconds, as the bookable window's start has)."""
    from bookings.api import AvailabilityOut
    from instrumentshare.api import api

    free = availability.free_intervals(instrument, start, end, now=NOW, schedule=schedule)
    answer = AvailabilityOut.model_validate({
        "instrument_id": instrument.pk, "time_zone": instrument.time_zone, "start": start, "end": end,
        "free": [{"start": a, "end": b} for a, b in free],
        "busy": [{"start": a, "end": b} for a, b in schedule.public_busy(start, end)]}).model_dump()
    rendered = api.renderer.render(None, answer, response_status=200)
    assert queries.availability_json(instrument, start, end, now=NOW) == rendered


def _raw(instrument, start, end) -> list[tuple[dt.datetime, dt.datetime]]:
    with connection.cursor() as cursor:
        cursor.execute(FREE_INTERVALS, {"ids": [instrument.pk], "start": start, "end": end, "now": NOW})
        return [(a, b) for _id, a, b in cursor.fetchall()]


def _raw_search(instrument, start, end, minutes) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(search_sql("i.id = %(id)s"), {"id": instrument.pk, "start": start, "end": end, "now": NOW,
                                                     "minutes": minutes, "limit": 20})
        return {pk for pk, _count in cursor.fetchall()}


@requires_postgres
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(calendar=calendars())
def test_free_time_is_the_same_in_python_in_postgresql_and_in_the_raw_query(world, calendar):
    with transaction.atomic():
        instrument = _build(world, calendar)
        cover = OpeningWindowCover.objects.get(instrument=instrument)
        assert OpeningWindow.objects.filter(instrument=instrument).exists() == bool(
            availability.opening_intervals(instrument, cover.start, cover.end))
        start, end = calendar["range"]
        buffer = dt.timedelta(minutes=calendar["buffer"])
        earliest, latest = availability.bookable_window(instrument, now=NOW)
        clipped = (max(start, earliest), min(end, latest))
        in_python = availability.free_intervals(instrument, start, end, now=NOW, schedule=availability.load_schedule(
            instrument, *clipped, buffer=buffer))
        in_database = availability._database_free(instrument, *clipped, buffer=buffer)
        assert in_database is not None, "the windows cover the range"
        assert in_database == in_python
        assert availability.free_intervals(instrument, start, end, now=NOW) == in_python
        schedule = availability.load_schedule(instrument, start, end, buffer=buffer)
        assert availability.database_free_and_busy(instrument, start, end, now=NOW) == (
            availability.free_intervals(instrument, start, end, now=NOW, schedule=schedule),
            schedule.public_busy(start, end))
        _assert_the_api_answers_the_same_from_both_paths(instrument, start, end, schedule)
        if calendar["holidays"] != "policy":
            assert _raw(instrument, start, end) == in_python
        queryset = type(instrument).objects.filter(pk=instrument.pk)
        minutes = calendar["minutes"]
        by_python = availability._python_free_for(queryset, start, end, minutes, now=NOW)
        assert availability.instruments_free_for(queryset, start, end, minutes, now=NOW) == by_python
        assert by_python == ({instrument.pk} if availability.longest_free_minutes(in_python) >= minutes else set())
        if calendar["holidays"] != "policy":
            assert _raw_search(instrument, start, end, minutes) == by_python
        transaction.set_rollback(True)


@given(span=st.integers(0, 31 * 24 * 60), need=st.integers(0, 31 * 24 * 60))
def test_the_search_chunks_hold_every_stretch_whole(span, need):
    """Every stretch of ``need`` minutes in a range of ``span`` lies whole in the chunk where it starts; the
    chunks start in order, none after the last possible start, and there are few of them."""
    step, offsets = availability.search_chunks(span, need)
    assert step == max(need, availability.SEARCH_CHUNK_MINUTES)
    assert offsets == sorted(set(offsets)) and len(offsets) <= 6
    if need > span:
        assert offsets == []
        return
    assert offsets[0] == 0 and offsets[-1] <= span - need
    for index, off in enumerate(offsets):
        nxt = offsets[index + 1] if index + 1 < len(offsets) else span - need + 1
        assert nxt == 2 * off + step or index + 1 == len(offsets)
        # The last stretch starting in this chunk ([nxt - 1, nxt - 1 + need)) ends within its reach.
        assert nxt - 1 + need <= 2 * off + step + need


@requires_postgres
@pytest.mark.parametrize(("gap_start", "gap_hours"), [
    (dt.timedelta(hours=23, minutes=30), 1),  # across the first chunk's end (a day after the range starts)
    (dt.timedelta(hours=20), 30),  # longer than a day: across two chunk starts
    (dt.timedelta(days=2, hours=23, minutes=30), 1),  # across the second chunk's end (3 days in)
    (dt.timedelta(days=6, hours=23), 1),  # ending where the range ends
])
def test_the_search_finds_a_stretch_that_no_day_holds_whole(world, gap_start, gap_hours):
    """The database searches in chunks (starting 0, 1, 3, 7 … days in) and stops at the first hit
    (``availability._FREE_FOR``): a free stretch across a chunk's end, or longer than a day, is found all the
    same, and not a minute longer."""
    start, end = NOW, NOW + dt.timedelta(days=7)
    gap = (start + gap_start, start + gap_start + dt.timedelta(hours=gap_hours))
    instrument = _build(world, {
        "zone": "Asia/Shanghai", "rules": [(weekday, 0, 24 * 60) for weekday in range(7)], "exceptions": {},
        "buffer": 0, "holidays": "none", "notice": 0,
        "busy": [("booking", start - dt.timedelta(hours=1), gap[0]), ("booking", gap[1], end + dt.timedelta(days=1))],
    })
    queryset = type(instrument).objects.filter(pk=instrument.pk)
    minutes = gap_hours * 60
    for asked, expected in [(minutes, {instrument.pk}), (minutes + 1, set())]:
        assert availability.instruments_free_for(queryset, start, end, asked, now=NOW) == expected
        assert availability._python_free_for(queryset, start, end, asked, now=NOW) == expected
        assert _raw_search(instrument, start, end, asked) == expected


@requires_postgres
def test_a_range_beyond_the_windows_is_answered_in_python(world):
    instrument = make_instrument(world, name="窗口之外")
    windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
    beyond = NOW + windows.PAST + dt.timedelta(days=instrument.policy.horizon_days) + windows.MARGIN
    assert availability._database_free(instrument, beyond - dt.timedelta(days=2), beyond + dt.timedelta(days=1),
                                       buffer=dt.timedelta()) is None
    inside = availability._database_free(instrument, NOW, NOW + dt.timedelta(days=7), buffer=dt.timedelta())
    assert inside == availability.opening_intervals(instrument, NOW, NOW + dt.timedelta(days=7))


@requires_postgres
def test_a_range_before_the_bookable_window_has_no_free_time_on_either_path(world):
    instrument = make_instrument(world, name="过去")
    windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
    start, end = NOW - dt.timedelta(hours=5), NOW + dt.timedelta(minutes=30)  # notice: 60 minutes
    assert availability.database_free_and_busy(instrument, start, end, now=NOW) == ([], [])
    assert queries.availability_json(instrument, start, end, now=NOW).endswith('"free": [], "busy": []}')
    queryset = type(instrument).objects.filter(pk=instrument.pk)
    assert availability.instruments_free_for(queryset, start, end, 15, now=NOW) == set()


@requires_postgres
def test_an_instrument_without_windows_is_answered_in_python(world):
    """A bulk load writes hours around the services: until the daily task runs, Python answers for it."""
    instrument = make_instrument(world, name="没有窗口")
    OpeningWindowCover.objects.filter(instrument=instrument).delete()
    start, end = NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=8)
    assert queries.availability_json(instrument, start, end, now=NOW) is None
    queryset = type(instrument).objects.filter(pk=instrument.pk)
    assert availability.instruments_free_for(queryset, start, end, 60, now=NOW) == {instrument.pk}
    assert availability.instruments_free_for(queryset, start, end, 11 * 60, now=NOW) == set()


def test_the_daily_refresh_moves_the_horizon_on(world):
    instrument = make_instrument(world, name="每日")
    windows.refresh_opening_windows(now=NOW)
    windows.refresh_opening_windows(now=NOW + dt.timedelta(days=1))
    cover = OpeningWindowCover.objects.get(instrument=instrument)
    assert cover.end == NOW + dt.timedelta(days=1 + instrument.policy.horizon_days) + windows.MARGIN
    rows = list(OpeningWindow.objects.filter(instrument=instrument).values_list("start", "end"))
    assert rows == availability.opening_intervals(instrument, cover.start, cover.end)
    assert rows[-1][1] > NOW + dt.timedelta(days=instrument.policy.horizon_days) + windows.MARGIN


def test_changing_the_hours_moves_the_windows(world):
    from catalog import services

    def windows_and_cover(instrument):
        cover = OpeningWindowCover.objects.get(instrument=instrument)
        rows = list(OpeningWindow.objects.filter(instrument=instrument).values_list("start", "end"))
        return rows, availability.opening_intervals(instrument, cover.start, cover.end)

    instrument = make_instrument(world, name="改时间")
    rows, expected = windows_and_cover(instrument)
    assert rows == expected and len(rows) > 40  # weekdays 08:00-18:00 over 60 days and more
    services.set_opening_hours(actor=world.manager, instrument_id=instrument.pk, rules=[(5, 9 * 60, 12 * 60)])
    rows, expected = windows_and_cover(instrument)
    assert rows == expected and rows
    assert all(start.astimezone(instrument.zone).weekday() == 5 for start, _end in rows)


@requires_postgres
@pytest.mark.parametrize("value", [
    dt.datetime(2026, 12, 3, 19, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 19, 0, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 19, 0, 0, 500, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 19, 0, 0, 1000, tzinfo=dt.UTC),
    dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    SHOWABLE_MIN, SHOWABLE_MAX, SHOWABLE_MAX.replace(microsecond=123456),
])
def test_postgresql_writes_each_instant_as_djangos_encoder_does(value):
    """The availability statement's items (``_ITEMS``: the JSON of a two-dimensional array of instants, edited
    as text), against the API's own rendering: whole seconds, fractions of 1 to 6 digits cut to milliseconds,
    the first and last showable days, one pair and several."""
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    pairs = [(value, SHOWABLE_MAX), (SHOWABLE_MIN, value), (value, value)]
    for count in (1, 3):
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + availability._ITEMS.replace("__T__", "to_json(%(pairs)s::timestamptz[])::text"),
                           {"pairs": [list(pair) for pair in pairs[:count]]})
            written = cursor.fetchone()[0]
        expected = [{"start": a.astimezone(dt.UTC), "end": b.astimezone(dt.UTC)} for a, b in pairs[:count]]
        assert written == json.dumps(expected, cls=DjangoJSONEncoder)


@requires_postgres
def test_the_availability_json_is_not_written_by_postgresql_in_a_session_outside_utc(world):
    """The statement's text edits look for UTC offsets: in a session with another zone the Python path answers."""
    instrument = make_instrument(world, name="时区仪器")
    windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
    start, end = NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=8)
    assert queries.availability_json(instrument, start, end, now=NOW) is not None
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Shanghai'")
    try:
        assert queries.availability_json(instrument, start, end, now=NOW) is None
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
