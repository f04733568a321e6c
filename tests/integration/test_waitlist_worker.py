"""The waiting-list job on a real Celery worker process (Redis, the test database)."""

import datetime as dt

import pytest

from bookings import services
from bookings.models import Booking, Notification, WaitlistEntry
from bookings.tasks import offer_freed_time, process_waitlists
from catalog import services as catalog_services
from tests.bookings.conftest import make_instrument, next_weekday


@pytest.mark.celery_worker
def test_a_real_worker_offers_freed_time_and_a_second_run_offers_nothing_more(world, start_worker):
    instrument = make_instrument(world)
    start = next_weekday(1, 10)
    end = start + dt.timedelta(hours=2)
    downtime = catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk, start=start, end=end,
                                             kind="planned", reason="pump service")
    entry = services.join_waitlist(user=world.researcher, instrument_id=instrument.pk, start=start, end=end,
                                   purpose="waiting")
    catalog_services.cancel_downtime(actor=world.manager, instrument_id=instrument.pk, downtime_id=downtime.pk)
    worker = start_worker()
    assert process_waitlists.apply_async(queue=worker.queue).get(timeout=60) == {"lapsed": 0, "ended": 0,
                                                                                  "offered": 1}
    entry.refresh_from_db()
    assert entry.state == WaitlistEntry.State.OFFERED and entry.hold.state == Booking.State.HELD
    assert Notification.objects.filter(booking=entry.hold, kind=Notification.Kind.OFFER).count() == 1
    assert offer_freed_time.apply_async((instrument.pk,), queue=worker.queue).get(timeout=60) == 0
    assert Booking.objects.filter(instrument=instrument, state=Booking.State.HELD).count() == 1
