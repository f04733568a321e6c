"""PostgreSQL kills the sending worker's connection while invitations are being mailed: the mail
already handed to SMTP is marked sent on a new connection (retried), so the sweep never mails it
twice; nothing is lost. A real SMTP server (aiosmtpd) receives the mail."""

import datetime as dt

import psycopg
import pytest
from django.db import connection

from bookings.models import Notification
from bookings.services import notifications
from tests.bookings.test_invitations import _pending_invitations, smtp_server  # noqa: F401 - shared fixture
from tests.conftest import requires_postgres


class KillingTheSender:
    """Accepts every message; while receiving the first, terminates the sender's database session."""

    def __init__(self, connect_kwargs: dict, sender_pid: int):
        self.messages, self.connect_kwargs, self.sender_pid = [], connect_kwargs, sender_pid

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook
        if not self.messages:
            with psycopg.connect(**self.connect_kwargs, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", [self.sender_pid])
        self.messages.append(envelope.rcpt_tos[:])
        return "250 OK"


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_killed_connection_while_marking_does_not_mail_twice(world, instrument, smtp_server):  # noqa: F811
    _pending_invitations(world, instrument, count=3)
    # As if the broker had been down: every invitation waits in the outbox for the sweep.
    Notification.objects.update(state="pending", sent_at=None, attempts=0)
    ids = list(Notification.objects.values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        sender_pid = cursor.fetchone()[0]
    params = connection.get_connection_params()
    kwargs = {key: params[key] for key in ("dbname", "user", "host", "port", "password") if params.get(key)}
    handler = smtp_server(KillingTheSender(kwargs, sender_pid))
    notifications.sweep_outbox(older_than=dt.timedelta(0))
    for _sweep in range(2):
        notifications.sweep_outbox(older_than=dt.timedelta(0))
    assert len(handler.messages) == 3  # each once
    assert set(Notification.objects.filter(pk__in=ids).values_list("state", flat=True)) == {"sent"}
