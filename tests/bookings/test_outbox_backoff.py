"""Invitations at least once, seen once (issue 18): no attempt cap that abandons a row, exponential
backoff to a ceiling, overdue rows counted for an alert, failed rows sent again from the admin, and
one Message-ID per revision. A real SMTP server (aiosmtpd) receives the mail."""

import datetime as dt
import email

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from bookings.models import Notification
from bookings.services import notifications
from tests.bookings.test_invitations import _pending_invitations, smtp_server  # noqa: F401 - shared fixture

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 2, 2, tzinfo=dt.UTC)


class Keeping:
    """An aiosmtpd handler that keeps every message, and refuses everything while ``down``."""

    def __init__(self):
        self.messages, self.down = [], False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's hook
        if self.down:
            return "451 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"


def test_backoff_doubles_from_a_minute_to_an_hour():
    waits = [notifications.next_attempt(attempts, NOW) - NOW for attempts in (1, 2, 3, 7, 8, 50)]
    assert [wait.total_seconds() / 60 for wait in waits] == [1, 2, 4, 60, 60, 60]


def test_a_row_is_never_abandoned_and_waits_out_its_backoff(world, instrument, smtp_server):  # noqa: F811
    handler = smtp_server(Keeping())
    handler.down = True
    with time_machine.travel(NOW, tick=False) as clock:
        [row_id] = _pending_invitations(world, instrument, count=1)
        for attempt in range(12):  # SMTP refuses for longer than any fixed retry schedule
            clock.shift(dt.timedelta(hours=1 if attempt else 0))
            notifications.sweep_outbox(older_than=dt.timedelta(0))
        row = Notification.objects.get(pk=row_id)
        assert (row.state, row.attempts) == ("pending", 12)
        handler.down = False
        assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 0  # its backoff is not over yet
        clock.shift(dt.timedelta(hours=1))
        assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 1
    assert Notification.objects.get(pk=row_id).state == "sent" and len(handler.messages) == 1


def test_every_send_of_a_revision_carries_the_same_message_id(world, instrument, smtp_server):  # noqa: F811
    handler = smtp_server(Keeping())
    [row_id] = _pending_invitations(world, instrument, count=1)
    notifications.sweep_outbox(older_than=dt.timedelta(0))
    # A crash after the SMTP hand-off and before the commit: the row is pending again and is resent.
    Notification.objects.filter(pk=row_id).update(state="pending", sent_at=None)
    notifications.sweep_outbox(older_than=dt.timedelta(0))
    first, second = (message["Message-ID"] for message in handler.messages)
    row = Notification.objects.get(pk=row_id)
    assert first == second == f"<booking-{row.booking_id}.invitation.{row.sequence}@{notifications.mail_domain()}>"


def test_overdue_rows_are_counted_for_the_alert(world, instrument, settings):
    settings.METRICS_TOKEN = ""
    with time_machine.travel(NOW, tick=False) as clock:
        _pending_invitations(world, instrument, count=2)
        clock.shift(dt.timedelta(minutes=settings.OUTBOX_ALERT_MINUTES + 1))
        assert notifications.overdue().count() == 2
        scraped = Client().get("/metrics").content.decode()
    assert "instrumentshare_outbox_overdue 2.0" in scraped


def test_a_failed_row_is_visible_and_sent_again_from_the_admin(world, instrument, smtp_server):  # noqa: F811
    handler = smtp_server(Keeping())
    [row_id] = _pending_invitations(world, instrument, count=1)
    type(world.researcher).objects.filter(pk=world.researcher.pk).update(email="")
    notifications.sweep_outbox(older_than=dt.timedelta(0))
    assert Notification.objects.get(pk=row_id).state == "failed"
    type(world.researcher).objects.filter(pk=world.researcher.pk).update(email="researcher@example.org")
    admin = type(world.researcher).objects.create_superuser("root", "root@example.org", "x" * 12)
    client = Client()
    client.force_login(admin)
    listing = client.get(reverse("admin:bookings_notification_changelist"), {"state__exact": "failed"})
    assert listing.status_code == 200 and f">{row_id}<" in listing.content.decode()
    response = client.post(reverse("admin:bookings_notification_changelist"),
                           {"action": "send_again", "_selected_action": [row_id]})
    assert response.status_code == 302
    assert Notification.objects.get(pk=row_id).state == "pending"
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 1
    assert [message["To"] for message in handler.messages] == ["researcher@example.org"]
