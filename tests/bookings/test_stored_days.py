"""Stored days of availability (``FreeDay``): a read of whole days answers from the text stored by an earlier
read, and the answer is always the one computed from scratch (``_FREE_AND_BUSY_JSON``): after new, cancelled
and moved bookings, downtime, a new buffer and new hours, and when a booking commits while a read is
computing the day it lands on."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time

import pytest
from django.db import connection, connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings import availability
from bookings.models import Booking, FreeDay, FreeEpoch
from catalog import windows
from catalog.models import BookingPolicy, Downtime, OpeningRule
from instrumentshare.core import rows
from instrumentshare.core.time import SHOWABLE_MAX, SHOWABLE_MIN
from tests.bookings.conftest import make_instrument
from tests.bookings.test_free_time_paths import NOW, _build, calendars
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(hours=24)


def _fresh(instrument):
    return type(instrument).objects.select_related("policy").get(pk=instrument.pk)


def _from_scratch(instrument, start, end, now=NOW) -> tuple[str, str] | None:
    instrument = _fresh(instrument)
    params = availability._free_and_busy_params(instrument, start, end, now=now)
    params.update(showable_min=SHOWABLE_MIN, showable_max=SHOWABLE_MAX)
    uncovered, free, busy = rows.run(availability._FREE_AND_BUSY_JSON, params)
    return None if uncovered else (free, busy)


def _answer(instrument, start, end, now=NOW) -> tuple[str, str] | None:
    return availability.database_free_and_busy_json(_fresh(instrument), start, end, now=now)


def _same(instrument, start, end, now=NOW) -> tuple[str, str]:
    """The answer twice (the second from what the first stored) and from scratch: all three equal."""
    expected = _from_scratch(instrument, start, end, now)
    assert expected is not None, "the windows cover the range"
    assert _answer(instrument, start, end, now) == expected
    assert _answer(instrument, start, end, now) == expected
    return expected


def _around_the_clock(world, name: str, **policy):
    instrument = make_instrument(world, name=name, hours=[(day, 0, 24 * 60) for day in range(7)],
                                 policy={"min_notice_minutes": 0, **policy})
    windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
    return instrument


def _instants(text: str) -> list[tuple[dt.datetime, dt.datetime]]:
    return [(dt.datetime.fromisoformat(item["start"]), dt.datetime.fromisoformat(item["end"]))
            for item in json.loads(text)]


@requires_postgres
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(calendar=calendars(), shift=st.integers(-30, 30), changes=st.lists(st.sampled_from(
    ["book", "cancel", "move", "downtime", "buffer", "hours"]), max_size=4))
def test_stored_days_answer_as_computing_from_scratch_does(world, calendar, shift, changes):
    with transaction.atomic():
        instrument = _build(world, calendar)
        start, end = calendar["range"]
        _same(instrument, start, end)
        # Another range over the same days: other edges, the stored middle.
        _same(instrument, start + dt.timedelta(hours=shift), end - dt.timedelta(hours=shift))
        for change in changes:
            free = _instants(_from_scratch(instrument, start, end)[0])
            active = list(Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES,
                                                 start__gte=start))
            instrument = _fresh(instrument)
            buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
            slot = next(((a, a + dt.timedelta(minutes=15)) for a, b in free if b - a >= dt.timedelta(minutes=15)),
                        None)
            if change == "book" and slot:
                Booking.objects.create(instrument=instrument, user=world.researcher, start=slot[0], end=slot[1],
                                       blocked_until=slot[1] + buffer, purpose="x", state="pending")
            elif change == "cancel" and active:
                Booking.objects.filter(pk=active[0].pk).update(state="cancelled")
            elif change == "move" and active and slot:
                Booking.objects.filter(pk=active[-1].pk).update(start=slot[0], end=slot[1],
                                                                blocked_until=slot[1] + buffer)
            elif change == "downtime":
                Downtime.objects.create(instrument=instrument, start=start + 2 * DAY, end=start + 2 * DAY
                                        + dt.timedelta(hours=5), reason="维护")
            elif change == "buffer":
                BookingPolicy.objects.filter(instrument=instrument).update(buffer_minutes=(
                    instrument.policy.buffer_minutes + 15) % 60)
            elif change == "hours":
                OpeningRule.objects.filter(instrument=instrument).delete()
                OpeningRule.objects.create(instrument=instrument, weekday=(start + 3 * DAY).weekday(),
                                           open_minute=9 * 60, close_minute=23 * 60)
                windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
            _same(instrument, start, end)
        transaction.set_rollback(True)


@requires_postgres
def test_a_read_stores_its_whole_days_and_the_next_reads_them(world):
    instrument = _around_the_clock(world, "整天")
    start = NOW + dt.timedelta(hours=5)
    end = start + 7 * DAY
    Booking.objects.create(instrument=instrument, user=world.researcher, start=start + DAY, end=start + DAY
                           + dt.timedelta(hours=1), blocked_until=start + DAY + dt.timedelta(hours=1), purpose="x")
    expected = _same(instrument, start, end)
    days = list(FreeDay.objects.filter(instrument=instrument).order_by("day"))
    first = dt.datetime(2026, 9, 19, tzinfo=dt.UTC)  # the first midnight after the start (07:00 UTC)
    assert [day.day for day in days] == [first + n * DAY for n in range(6)]
    assert all(day.free is not None for day in days)
    # Open around the clock: four weeks of free time are one item per gap, joined across every midnight.
    assert len(json.loads(expected[0])) == 2
    # What is stored is what is served: a stored day's text changed by hand shows in the next answer.
    FreeDay.objects.filter(instrument=instrument, day=first + 3 * DAY).update(busy='{"start": "stored"}')
    assert '"stored"' in _answer(instrument, start, end)[1]


@requires_postgres
def test_a_booking_empties_the_days_it_touches_and_an_hours_change_the_whole_instrument(world):
    instrument = _around_the_clock(world, "触发", buffer_minutes=30)
    start = dt.datetime(2026, 9, 18, tzinfo=dt.UTC)
    _same(instrument, start, start + 10 * DAY)
    assert FreeDay.objects.filter(instrument=instrument, free__isnull=True).count() == 0
    # 00:10–01:00 on the 21st, with 30 minutes of buffer before it: the 20th and the 21st.
    booking = Booking.objects.create(instrument=instrument, user=world.researcher, start=start + 3 * DAY
                                     + dt.timedelta(minutes=10), end=start + 3 * DAY + dt.timedelta(hours=1),
                                     blocked_until=start + 3 * DAY + dt.timedelta(hours=1, minutes=30), purpose="x")
    emptied = FreeDay.objects.filter(instrument=instrument, free__isnull=True).order_by("day")
    assert [row.day for row in emptied] == [start + 2 * DAY, start + 3 * DAY]
    _same(instrument, start, start + 10 * DAY)
    version = FreeDay.objects.get(instrument=instrument, day=start + 3 * DAY).version
    # A change that does not move active time (confirmed to completed, a new purpose) leaves the days alone.
    Booking.objects.filter(pk=booking.pk).update(state="completed", purpose="y")
    assert FreeDay.objects.get(instrument=instrument, day=start + 3 * DAY).version == version
    assert not FreeDay.objects.filter(instrument=instrument, free__isnull=True).exists()
    epoch = FreeEpoch.objects.get(instrument_id=instrument.pk).epoch
    windows.refresh_opening_windows(instrument_ids=[instrument.pk], now=NOW)
    assert FreeEpoch.objects.get(instrument_id=instrument.pk).epoch > epoch
    _same(instrument, start, start + 10 * DAY)


@requires_postgres
def test_the_triggers_know_the_active_states():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'booking_free_day_insert'")
        definition = cursor.fetchone()[0]
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'bookings_free_day_touch'")
        function = cursor.fetchone()[0]
    assert set(re.findall(r"'(\w+)'", definition)) == set(Booking.ACTIVE_STATES)
    assert set(re.findall(r"'(\w+)'", function.split("FROM (")[1].split("UNION")[0])) == set(Booking.ACTIVE_STATES)


@requires_postgres
def test_a_range_without_a_whole_day_is_computed_and_stores_nothing(world):
    instrument = _around_the_clock(world, "半天")
    start = NOW + dt.timedelta(hours=3)
    _same(instrument, start, start + dt.timedelta(hours=20))
    assert not FreeDay.objects.filter(instrument=instrument).exists()


def _waiting_on_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND query LIKE '%%bookings_freeday%%' AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stored_before", [False, True])
def test_a_booking_committed_while_a_read_computes_its_day_is_never_hidden(world, stored_before):
    instrument = make_instrument(world, name="并发", hours=[(day, 0, 24 * 60) for day in range(7)],
                                 policy={"min_notice_minutes": 0})
    now = dt.datetime.now(dt.UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) + 2 * DAY
    end = start + 5 * DAY
    slot = (start + 2 * DAY + dt.timedelta(hours=10), start + 2 * DAY + dt.timedelta(hours=11))
    if stored_before:  # the day is stored, then emptied by a cancellation: its row is there, with a version
        booking = Booking.objects.create(instrument=instrument, user=world.researcher, start=slot[0],
                                         end=slot[1], blocked_until=slot[1], purpose="x")
        _same(instrument, start, end, now)
        Booking.objects.filter(pk=booking.pk).update(state="cancelled")
    booked, release, answers, errors = threading.Event(), threading.Event(), [], []

    def writer():
        try:
            with transaction.atomic():
                Booking.objects.create(instrument=instrument, user=world.researcher, start=slot[0], end=slot[1],
                                       blocked_until=slot[1], purpose="并发写")
                booked.set()
                release.wait(30)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
            booked.set()
        finally:
            connections["default"].close()

    def reader():
        try:
            answers.append(availability.database_free_and_busy_json(instrument, start, end, now=now))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections["default"].close()

    threads = [threading.Thread(target=writer)]
    threads[0].start()
    assert booked.wait(30)
    threads.append(threading.Thread(target=reader))
    threads[1].start()
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    waited = _waiting_on_a_lock()
    release.set()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert waited, "the read waited for the writer's day"
    assert slot[0].strftime("%Y-%m-%dT%H:%M:%SZ") not in answers[0][1]
    # The read computed the day before the booking committed, and did not store it.
    day = FreeDay.objects.get(instrument=instrument, day=start + 2 * DAY)
    assert day.free is None
    after = _same(instrument, start, end, now)
    assert slot[0].strftime("%Y-%m-%dT%H:%M:%SZ") in after[1]


def _versions(instrument) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT day, xmin::text FROM bookings_freeday WHERE instrument_id = %s ORDER BY day",
                       [instrument.pk])
        return cursor.fetchall()


@requires_postgres
def test_the_hourly_job_drops_past_days_and_stores_the_weeks_ahead(world):
    instrument = _around_the_clock(world, "每小时")
    passed = FreeDay.objects.create(instrument=instrument, day=NOW - 3 * DAY, free="", busy="")
    kept = FreeDay.objects.create(instrument=instrument, day=NOW - DAY, free="", busy="")
    result = availability.keep_stored_days(now=NOW)
    assert result["dropped"] >= 1 and result["instruments"] >= 1
    assert not FreeDay.objects.filter(pk=passed.pk).exists() and FreeDay.objects.filter(pk=kept.pk).exists()
    first = dt.datetime(2026, 9, 19, tzinfo=dt.UTC)  # NOW is 02:00 UTC on the 18th
    epoch = FreeEpoch.objects.get(instrument_id=instrument.pk).epoch
    stored = FreeDay.objects.filter(instrument=instrument, day__gte=first, free__isnull=False, epoch=epoch)
    assert sorted(stored.values_list("day", flat=True)) == [first + n * DAY for n in range(27)]
    # Nothing left to compute: the next run and a read of the four weeks write no row.
    before = _versions(instrument)
    availability.keep_stored_days(now=NOW)
    _same(instrument, NOW, NOW + 28 * DAY)
    assert _versions(instrument) == before


@requires_postgres
def test_the_daily_refresh_of_the_windows_stores_the_days_again_at_once(world):
    from catalog.tasks import refresh_opening_windows_task

    instrument = make_instrument(world, name="每日刷新", hours=[(day, 0, 24 * 60) for day in range(7)])
    refresh_opening_windows_task()
    epoch = FreeEpoch.objects.get(instrument_id=instrument.pk).epoch
    fresh = FreeDay.objects.filter(instrument=instrument, epoch=epoch, free__isnull=False)
    assert fresh.count() >= 27  # the whole days of the next four weeks, made after the windows were rewritten


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_read_chosen_by_the_deadlock_detector_is_answered_in_full(world):
    """A writer that takes two days' rows in descending order while a read stores them in ascending order
    deadlocks with it; PostgreSQL ends the read (its wait began first, and the writer's session waits longer
    before checking), which then answers by computing everything, storing nothing."""
    instrument = make_instrument(world, name="死锁", hours=[(day, 0, 24 * 60) for day in range(7)],
                                 policy={"min_notice_minutes": 0})
    now = dt.datetime.now(dt.UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) + 2 * DAY
    end = start + 5 * DAY
    upsert = ("INSERT INTO bookings_freeday (instrument_id, day, version, epoch, free_head, free_tail) "
              "VALUES (%s, %s, 1, 0, false, false) ON CONFLICT (instrument_id, day) "
              "DO UPDATE SET version = bookings_freeday.version + 1, free = NULL, busy = NULL")
    holding, proceed, answers, errors = threading.Event(), threading.Event(), [], []

    def writer():
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute("SET LOCAL deadlock_timeout = '10s'")
                cursor.execute(upsert, [instrument.pk, start + 4 * DAY])
                holding.set()
                proceed.wait(30)
                cursor.execute(upsert, [instrument.pk, start + DAY])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
            holding.set()
        finally:
            connections["default"].close()

    def reader():
        try:
            answers.append(availability.database_free_and_busy_json(instrument, start, end, now=now))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections["default"].close()

    threads = [threading.Thread(target=writer)]
    threads[0].start()
    assert holding.wait(30)
    threads.append(threading.Thread(target=reader))
    threads[1].start()
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    proceed.set()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert answers[0] == _from_scratch(instrument, start, end, now)
    # The read's days were rolled back with it; the writer's two rows are all there is.
    assert sorted(FreeDay.objects.filter(instrument=instrument).values_list("day", flat=True)) == [
        start + DAY, start + 4 * DAY]
