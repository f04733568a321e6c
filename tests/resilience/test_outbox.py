"""The broker is down while a booking is made: the booking commits, the invitation waits in the
outbox (a row in the same transaction), and is sent once when the broker is back."""

import datetime as dt

import pytest
from django.core import mail

from bookings.models import Booking, Notification
from bookings.services import notifications
from instrumentshare.celery import app
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down():
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url", "broker_connection_retry",
                                             "broker_connection_max_retries", "task_publish_retry")}
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:9/0", broker_connection_retry=False,
                    broker_connection_max_retries=0, task_publish_retry=False)
    _fresh_producer_pool()
    yield
    app.conf.update(saved)
    _fresh_producer_pool()


def _fresh_producer_pool():
    """Forget every cached connection and producer pool, so the next publish connects to the
    broker URL now configured (and no closed pool is left for later tests in this process)."""
    from kombu import pools

    pools.reset()
    app._pool = None  # noqa: SLF001 - Celery keeps these private; a test must not leak them
    app.amqp._producer_pool = None  # noqa: SLF001


def test_a_booking_commits_while_the_broker_is_down_and_its_mail_goes_out_once_later(
        world, instrument, api_as, broker_down, django_capture_on_commit_callbacks):
    start = next_weekday(1, 10)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(world.researcher).post("/bookings", {
            "instrument_id": instrument.pk, "start": start.isoformat(),
            "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "broker outage"})
    assert response.status_code == 201
    assert Booking.objects.filter(pk=response.json()["id"]).exists()
    assert Notification.objects.get().state == "pending"
    assert mail.outbox == []
    # The broker is back: the periodic sweep sends what waited, once, however often it runs.
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 1
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 0
    assert len(mail.outbox) == 1
    assert Notification.objects.get().state == "sent"
