"""Sending the outbox: bilingual e-mails with the iCalendar part whose MIME method matches."""

from __future__ import annotations

import datetime as dt
import logging
from email.mime.text import MIMEText

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from . import ical
from .models import Booking, Notification

logger = logging.getLogger(__name__)

SUBJECTS = {
    ("invitation", "REQUEST"): "预约确认 Booking {state_en}: {name}",
    ("cancellation", "CANCEL"): "预约取消 Booking cancelled: {name}",
    ("reminder", "REQUEST"): "预约提醒 Reminder: {name} starts soon",
}


def method_for(notification: Notification) -> str:
    return "CANCEL" if notification.kind == Notification.Kind.CANCELLATION else "REQUEST"


def build_message(notification: Notification) -> EmailMultiAlternatives:
    booking = notification.booking
    method = method_for(notification)
    zone = booking.instrument.zone
    context = {
        "booking": booking,
        "instrument": booking.instrument,
        "kind": notification.kind,
        "local_start": booking.start.astimezone(zone),
        "local_end": booking.end.astimezone(zone),
        "time_zone": booking.instrument.time_zone,
        "url": f"{settings.SITE_URL}/bookings/{booking.pk}/",
    }
    with translation.override("en"):
        body = render_to_string("bookings/email/notification.txt", context)
    state_en = "awaiting approval" if booking.state == Booking.State.PENDING else "confirmed"
    subject = SUBJECTS[(notification.kind, method)].format(name=booking.instrument.name_zh, state_en=state_en)
    message = EmailMultiAlternatives(subject=subject, body=body, to=[booking.user.email])
    message.extra_headers["X-InstrumentShare-Booking"] = str(booking.pk)
    calendar = MIMEText(ical.invitation(booking, method).decode(), "calendar", "utf-8")
    calendar.set_param("method", method)
    calendar.add_header("Content-Disposition", "attachment", filename="invite.ics")
    message.attach(calendar)
    return message


def send(notification_id: int) -> bool:
    """Send one outbox row if it is still pending. True when this call sent it.

    The row is locked (SKIP LOCKED) for the send, so two workers given the same row send it
    once; a row already sent is left alone. A crash between the SMTP hand-off and the commit
    can send it again later: e-mail is at-least-once, never lost.
    """
    with transaction.atomic():
        notification = (Notification.objects.select_for_update(skip_locked=True, of=("self",))
                        .select_related("booking__instrument__lab", "booking__user")
                        .filter(pk=notification_id, state=Notification.State.PENDING).first())
        if notification is None:
            return False
        booking = notification.booking
        # A later revision supersedes an unsent earlier one: only the newest is worth mailing.
        superseded = notification.kind != Notification.Kind.REMINDER and Notification.objects.filter(
            booking=booking, sequence__gt=notification.sequence
        ).exclude(kind=Notification.Kind.REMINDER).exists()
        if not booking.user.email or superseded:
            notification.state = Notification.State.SENT if superseded else Notification.State.FAILED
            notification.last_error = "superseded by a later revision" if superseded else "no e-mail address"
            notification.save(update_fields=["state", "last_error"])
            return False
        notification.attempts += 1
        try:
            build_message(notification).send()
        except Exception as error:
            Notification.objects.filter(pk=notification.pk).update(attempts=notification.attempts,
                                                                   last_error=str(error)[:500])
            raise
        notification.state, notification.sent_at = Notification.State.SENT, timezone.now()
        notification.save(update_fields=["state", "sent_at", "attempts"])
        return True


def pending_ids(*, older_than: dt.timedelta = dt.timedelta(seconds=0), limit: int = 500) -> list[int]:
    cutoff = timezone.now() - older_than
    return list(Notification.objects.filter(state=Notification.State.PENDING, created_at__lte=cutoff,
                                            attempts__lt=10).order_by("id").values_list("id", flat=True)[:limit])


def sweep_outbox(*, older_than: dt.timedelta = dt.timedelta(minutes=1)) -> int:
    """Send what is still pending (the broker was down, a worker died). Returns how many were sent."""
    sent = 0
    for notification_id in pending_ids(older_than=older_than):
        try:
            sent += send(notification_id)
        except Exception:  # one bad address must not stop the sweep
            logger.exception("notification %s failed", notification_id)
    return sent


def queue_due_reminders(*, now: dt.datetime | None = None) -> list[int]:
    """Outbox rows for confirmed bookings starting within the reminder lead. Once per booking."""
    now = now or timezone.now()
    due = Booking.objects.filter(state=Booking.State.CONFIRMED, start__gt=now,
                                 start__lte=now + dt.timedelta(hours=settings.BOOKING_REMINDER_HOURS))
    due = due.exclude(notifications__kind=Notification.Kind.REMINDER).values_list("id", flat=True)
    rows = [Notification(booking_id=booking_id, kind=Notification.Kind.REMINDER, sequence=0) for booking_id in due]
    # The unique key (booking, kind, sequence) makes a second run, or a second beat, add nothing.
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return list(Notification.objects.filter(kind=Notification.Kind.REMINDER, state=Notification.State.PENDING,
                                            booking_id__in=[row.booking_id for row in rows]).values_list("id",
                                                                                                         flat=True))
