"""Two beats started by mistake fire every periodic job twice at once: each still takes effect once."""

import datetime as dt
import threading

import pytest
from django.core import mail
from django.db import connection

from bookings import services
from bookings.models import Booking, Notification
from bookings.services import notifications
from instrumentshare.audit import services as audit
from instrumentshare.audit.models import AuditSeal
from tests.bookings.conftest import make_instrument, next_weekday
from tests.conftest import requires_postgres
from usage.models import BillableItem, UsageSession
from usage.services.reconcile import reconcile


def twice_at_once(job):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait(10)
            results.append(job())
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_periodic_jobs_run_twice_at_once_take_effect_once(world):
    instrument = make_instrument(world, policy={"min_notice_minutes": 0})
    monday = next_weekday(0, 9, weeks_ahead=-1)
    for day in range(5):
        start = monday + dt.timedelta(days=day)
        services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                          end=start + dt.timedelta(hours=2), purpose="x",
                                          now=start - dt.timedelta(days=1))
        if day % 2 == 0:
            UsageSession.objects.create(instrument=instrument, user=world.researcher, source="logger",
                                        external_ref=f"s{day}", start=start, end=start + dt.timedelta(hours=1))
    Notification.objects.update(state="sent")
    soon = next_weekday(1, 10, weeks_ahead=1)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=soon,
                            end=soon + dt.timedelta(hours=1), purpose="reminder me",
                            now=soon - dt.timedelta(days=3))
    Notification.objects.update(state="sent")
    mail.outbox.clear()
    now = monday + dt.timedelta(days=6)

    twice_at_once(lambda: reconcile(since=monday - dt.timedelta(days=1), now=now))
    assert BillableItem.objects.count() == 5
    assert Booking.objects.filter(state="completed").count() == 3
    assert Booking.objects.filter(state="no_show").count() == 2
    assert services.credit_score(world.researcher) == 80  # two no-shows, each penalised once

    reminder_time = soon - dt.timedelta(hours=5)

    def remind():
        return [notifications.send(pk) for pk in notifications.queue_due_reminders(now=reminder_time)]

    twice_at_once(remind)
    assert len([m for m in mail.outbox if "Reminder" in m.subject]) == 1

    twice_at_once(audit.seal_pending)
    seals = list(AuditSeal.objects.order_by("seq").values_list("seq", flat=True))
    assert seals == list(range(1, len(seals) + 1))
    assert audit.verify() is None
