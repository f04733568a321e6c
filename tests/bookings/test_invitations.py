"""Calendar invitations: parsed back from the sent e-mails."""

import datetime as dt
import email
import socket

import pytest
from django.core import mail
from icalendar import Calendar

from bookings import services
from bookings.models import Notification
from bookings.services import notifications
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db


def calendar_parts(message):
    """(MIME method parameter, parsed calendar) for every text/calendar part of a sent message."""
    parsed = email.message_from_bytes(message.message().as_bytes())
    parts = []
    for part in parsed.walk():
        if part.get_content_type() == "text/calendar":
            parts.append((part.get_param("method"), Calendar.from_ical(part.get_payload(decode=True))))
    return parts


def only_event(calendar):
    events = [c for c in calendar.walk() if c.name == "VEVENT"]
    assert len(events) == 1
    return events[0]


def test_request_on_confirm_and_change_cancel_on_cancel(world, instrument, django_capture_on_commit_callbacks):
    start = next_weekday(1, 10)
    with django_capture_on_commit_callbacks(execute=True):
        booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                          end=start + dt.timedelta(hours=1), purpose="TEM grid screening")
    with django_capture_on_commit_callbacks(execute=True):
        services.reschedule_booking(actor=world.researcher, booking_id=booking.pk,
                                    start=start + dt.timedelta(hours=2), end=start + dt.timedelta(hours=3))
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_booking(actor=world.researcher, booking_id=booking.pk)
    assert len(mail.outbox) == 3
    seen = []
    for message in mail.outbox:
        assert message.to == [world.researcher.email]
        [(mime_method, calendar)] = calendar_parts(message)
        assert mime_method == str(calendar["METHOD"])  # the MIME part says what the calendar says
        event = only_event(calendar)
        seen.append((mime_method, str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"])))
        assert "@" in str(event["ORGANIZER"]) and str(event["ATTENDEE"]) == f"mailto:{world.researcher.email}"
        assert "仪器预约" in str(event["SUMMARY"]) and "Instrument booking" in str(event["SUMMARY"])
        assert event.decoded("DTSTART").tzinfo is not None
    methods, uids, sequences, statuses = zip(*seen, strict=True)
    assert methods == ("REQUEST", "REQUEST", "CANCEL")
    assert len(set(uids)) == 1
    assert sequences[0] < sequences[1] < sequences[2]
    assert statuses == ("CONFIRMED", "CONFIRMED", "CANCELLED")
    moved = only_event(calendar_parts(mail.outbox[1])[0][1])
    assert moved.decoded("DTSTART") == (start + dt.timedelta(hours=2)).astimezone(dt.UTC)
    assert "预约" in mail.outbox[0].subject and "Booking" in mail.outbox[0].subject


def test_sending_the_same_revision_twice_sends_one_mail(world, instrument, django_capture_on_commit_callbacks):
    start = next_weekday(1, 10)
    with django_capture_on_commit_callbacks(execute=True):
        booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                          end=start + dt.timedelta(hours=1), purpose="x")
    notification = Notification.objects.get(booking=booking)
    assert notifications.send(notification.pk) is False
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 0
    assert len(mail.outbox) == 1


def test_a_rejection_sends_a_cancel(world, django_capture_on_commit_callbacks):
    from tests.bookings.conftest import make_instrument

    instrument = make_instrument(world, name="审批", policy={"approval": "all"})
    start = next_weekday(1, 10)
    with django_capture_on_commit_callbacks(execute=True):
        booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                          end=start + dt.timedelta(hours=1), purpose="x")
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_booking(actor=world.manager, booking_id=booking.pk, reason="booked for maintenance")
    first, second = (calendar_parts(m)[0] for m in mail.outbox)
    assert first[0] == "REQUEST" and str(only_event(first[1])["STATUS"]) == "TENTATIVE"
    assert second[0] == "CANCEL" and int(only_event(second[1])["SEQUENCE"]) == 1


def test_reminders_are_sent_once_even_if_the_job_runs_twice(world, instrument):
    start = next_weekday(1, 10)
    now = start - dt.timedelta(hours=5)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                            end=start + dt.timedelta(hours=1), purpose="x", now=start - dt.timedelta(days=3))
    mail.outbox.clear()
    for _ in range(2):
        for notification_id in notifications.queue_due_reminders(now=now):
            notifications.send(notification_id)
    reminders = [m for m in mail.outbox if "Reminder" in m.subject]
    assert len(reminders) == 1
    assert Notification.objects.filter(kind="reminder").count() == 1


def _reminders():
    return [m for m in mail.outbox if "Reminder" in m.subject]


def test_a_booking_moved_after_its_reminder_is_reminded_of_its_new_time(world, instrument):
    # Regression: reminders were once per booking, so a booking moved after its reminder had none for the new time.
    start = next_weekday(1, 10)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="x", now=start - dt.timedelta(days=3))
    for notification_id in notifications.queue_due_reminders(now=start - dt.timedelta(hours=5)):
        notifications.send(notification_id)
    moved = start + dt.timedelta(days=2)
    services.reschedule_booking(actor=world.researcher, booking_id=booking.pk, start=moved,
                                end=moved + dt.timedelta(hours=1), now=start - dt.timedelta(hours=4))
    assert notifications.queue_due_reminders(now=start - dt.timedelta(hours=3)) == []   # not due yet
    for notification_id in notifications.queue_due_reminders(now=moved - dt.timedelta(hours=5)):
        notifications.send(notification_id)
    first, second = _reminders()
    assert only_event(calendar_parts(first)[0][1]).decoded("DTSTART") == start.astimezone(dt.UTC)
    assert only_event(calendar_parts(second)[0][1]).decoded("DTSTART") == moved.astimezone(dt.UTC)


def test_a_reminder_not_yet_sent_when_the_booking_is_cancelled_is_never_sent(world, instrument):
    start = next_weekday(1, 10)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="x", now=start - dt.timedelta(days=3))
    [reminder_id] = notifications.queue_due_reminders(now=start - dt.timedelta(hours=5))
    services.cancel_booking(actor=world.researcher, booking_id=booking.pk, now=start - dt.timedelta(hours=4))
    mail.outbox.clear()
    assert notifications.send(reminder_id) is False
    assert _reminders() == [] and Notification.objects.get(pk=reminder_id).state == "sent"   # closed, not mailed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_invitations_reach_a_real_smtp_server(world, instrument, settings, django_capture_on_commit_callbacks):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    port = _free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        start = next_weekday(1, 10)
        with django_capture_on_commit_callbacks(execute=True):
            booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                              end=start + dt.timedelta(hours=1), purpose="x")
        with django_capture_on_commit_callbacks(execute=True):
            services.cancel_booking(actor=world.researcher, booking_id=booking.pk)
    finally:
        controller.stop()
    assert len(received) == 2
    methods = []
    for message in received:
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                calendar = Calendar.from_ical(part.get_payload(decode=True))
                assert part.get_param("method") == str(calendar["METHOD"])
                methods.append(part.get_param("method"))
    assert methods == ["REQUEST", "CANCEL"]


class Counting:
    """An aiosmtpd handler that counts connections and messages, and refuses one address."""

    def __init__(self, refuse: str = ""):
        self.connections, self.messages, self.refuse = 0, [], refuse

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd's hook
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address == self.refuse:
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(envelope.rcpt_tos[:])
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    from aiosmtpd.controller import Controller

    def start(handler):
        port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        return handler

    started = []
    yield start
    for controller in started:
        controller.stop()


def _pending_invitations(world, instrument, *, count: int, user=None, week: int = 1) -> list[int]:
    for n in range(count):
        start = next_weekday(n // 4, 8 + 2 * (n % 4), weeks_ahead=week)
        services.create_booking(user=user or world.researcher, instrument_id=instrument.pk, start=start,
                                end=start + dt.timedelta(hours=1), purpose=f"batch {n}")
    return list(Notification.objects.filter(state="pending").values_list("pk", flat=True))


def test_a_sweep_sends_its_batch_over_one_smtp_connection_and_marks_every_row_sent(world, instrument, smtp_server):
    handler = smtp_server(Counting())
    ids = _pending_invitations(world, instrument, count=6)
    assert len(ids) == 6
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 6
    assert len(handler.messages) == 6 and handler.connections == 1
    assert set(Notification.objects.values_list("state", "attempts")) == {("sent", 1)}
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 0 and len(handler.messages) == 6


def test_a_refused_address_is_counted_and_left_pending_while_the_others_go(world, instrument, smtp_server):
    handler = smtp_server(Counting(refuse=world.manager.email))
    ids = _pending_invitations(world, instrument, count=3)
    refused = _pending_invitations(world, instrument, count=4, user=world.manager, week=2)
    refused = sorted(set(refused) - set(ids))
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 3
    assert handler.messages == [[world.researcher.email]] * 3
    for row in Notification.objects.filter(pk__in=refused):
        assert (row.state, row.attempts) == ("pending", 1) and "550" in row.last_error
    with pytest.raises(OSError):  # the task's own try raises, so Celery retries it
        notifications.send(refused[0])
    assert Notification.objects.get(pk=refused[0]).attempts == 2


def test_an_unreachable_server_leaves_the_outbox_for_the_next_sweep(world, instrument, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _free_port(), 2
    ids = _pending_invitations(world, instrument, count=3)
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 0
    rows = list(Notification.objects.filter(pk__in=ids).order_by("pk").values_list("state", "attempts"))
    assert rows == [("pending", 1), ("pending", 0), ("pending", 0)]  # tried once, then the sweep stopped
    with pytest.raises(ConnectionError):
        notifications.send(ids[1])


def test_a_reschedule_mail_says_rescheduled_from_the_old_to_the_new_time(world, instrument,
                                                                        django_capture_on_commit_callbacks):
    start = next_weekday(1, 10)
    with django_capture_on_commit_callbacks(execute=True):
        booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                          end=start + dt.timedelta(hours=1), purpose="TEM grid screening")
    with django_capture_on_commit_callbacks(execute=True):
        services.reschedule_booking(actor=world.researcher, booking_id=booking.pk,
                                    start=start + dt.timedelta(hours=3), end=start + dt.timedelta(hours=4))
    first, moved = mail.outbox
    assert "rescheduled" not in first.subject and "rescheduled" not in first.body
    assert "rescheduled" in moved.subject and "改期" in moved.subject
    day = f"{start:%Y-%m-%d}"
    assert f"{day} 10:00 – 11:00 → 新时间 Now: {day} 13:00 – 14:00" in moved.body


def test_a_rejection_mail_says_rejected_not_cancelled(world, django_capture_on_commit_callbacks):
    from tests.bookings.conftest import make_instrument

    approved = make_instrument(world, name="需审批", policy={"approval": "all"})
    start = next_weekday(2, 10)
    booking = services.create_booking(user=world.researcher, instrument_id=approved.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="XRD")
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_booking(actor=world.manager, booking_id=booking.pk, reason="Sample not allowed")
    [rejection] = [m for m in mail.outbox if "CANCEL" in str(m.message())]
    assert "rejected" in rejection.subject and "未获批准" in rejection.subject
    assert "rejected" in rejection.body and "cancelled" not in rejection.body and "Sample not allowed" in rejection.body
