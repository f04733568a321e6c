"""A worker killed (SIGKILL) in the middle of reconciliation: the task is redelivered to another
worker and the result is exactly what one run gives."""

import datetime as dt
import os
import signal
import time

import pytest

from bookings.models import Booking
from tests.bookings.conftest import make_instrument
from usage.models import BillableItem, UsageSession
from usage.services.reconcile import reconcile
from usage.tasks import reconcile_window

INSTRUMENTS = 20
PER_INSTRUMENT = 150


def _fill(world):
    """3,000 past bookings, each with a usage session, inserted in bulk."""
    base = dt.datetime(2026, 10, 5, 0, tzinfo=dt.UTC)
    bookings, sessions = [], []
    for index in range(INSTRUMENTS):
        instrument = make_instrument(world, name=f"批量{index}", hours=[(d, 0, 1440) for d in range(7)])
        for slot in range(PER_INSTRUMENT):
            start = base + dt.timedelta(hours=3 * slot)
            bookings.append(Booking(instrument=instrument, user=world.researcher, charged_lab=world.lab_a,
                                    start=start, end=start + dt.timedelta(hours=2),
                                    blocked_until=start + dt.timedelta(hours=2), state="confirmed", purpose="bulk"))
    Booking.objects.bulk_create(bookings, batch_size=1000)
    for booking in Booking.objects.filter(purpose="bulk"):
        sessions.append(UsageSession(instrument_id=booking.instrument_id, user=world.researcher, source="logger",
                                     external_ref=f"bulk-{booking.pk}", start=booking.start,
                                     end=booking.start + dt.timedelta(minutes=100)))
    UsageSession.objects.bulk_create(sessions, batch_size=1000)
    return base


@pytest.mark.celery_worker
def test_reconciliation_survives_a_killed_worker(world, start_worker):
    base = _fill(world)
    total = INSTRUMENTS * PER_INSTRUMENT
    since, until, now = base - dt.timedelta(days=1), base + dt.timedelta(days=30), base + dt.timedelta(days=40)
    env = {"CELERY_VISIBILITY_TIMEOUT": "5", "CELERY_UNACKED_RESTORE_INTERVAL": "1",
           "CELERY_UNACKED_RESTORE_THROTTLE": "1", "RECONCILE_CHUNK": "40"}
    first = start_worker(extra_env=env)
    result = reconcile_window.apply_async(args=[since.isoformat(), until.isoformat(), now.isoformat()],
                                          queue=first.queue)
    deadline = time.monotonic() + 120
    while BillableItem.objects.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    partial = BillableItem.objects.count()
    assert 0 < partial < total, f"the worker was not caught mid-run ({partial} of {total} items)"
    second = start_worker(queue=first.queue, extra_env=env)
    assert second.poll() is None
    outcome = result.get(timeout=180)
    assert outcome["skipped"] is False
    assert BillableItem.objects.count() == total
    assert BillableItem.objects.values("booking").distinct().count() == total
    assert Booking.objects.filter(state="completed").count() == total
    assert set(BillableItem.objects.values_list("quantity", flat=True)) == {120}
    again = reconcile(since=since, until=until, now=now)
    assert (again.items_created, again.items_updated, again.completed) == (0, 0, 0)
