"""Sending the outbox: bilingual e-mails with the iCalendar part whose MIME method matches.

A sweep sends its rows in batches over one SMTP connection; a task sends its one row.
"""

from __future__ import annotations

import datetime as dt
import logging
from email.mime.text import MIMEText

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone, translation

from instrumentshare.audit.models import AuditEvent

from .. import ical
from ..models import Booking, Notification

logger = logging.getLogger(__name__)

SUBJECTS = {
    ("invitation", "REQUEST"): "预约确认 Booking {state_en}: {name}",
    ("cancellation", "CANCEL"): "预约取消 Booking cancelled: {name}",
    ("reminder", "REQUEST"): "预约提醒 Reminder: {name} starts soon",
}


def method_for(notification: Notification) -> str:
    return "CANCEL" if notification.kind == Notification.Kind.CANCELLATION else "REQUEST"


def _moved_from(notification: Notification, zone) -> tuple[dt.datetime, dt.datetime] | None:
    """The local times a booking had before the reschedule this invitation announces, or None when the
    revision is not a reschedule (the audit record of the move holds both revisions)."""
    if notification.kind != Notification.Kind.INVITATION or notification.sequence == 0:
        return None
    event = (AuditEvent.objects.filter(action="booking.rescheduled", target_id=str(notification.booking_id),
                                       after__sequence=notification.sequence).order_by("-id").first())
    if event is None or not event.before:
        return None
    try:
        return tuple(dt.datetime.fromisoformat(str(event.before[key])).astimezone(zone) for key in ("start", "end"))
    except (KeyError, TypeError, ValueError):
        return None


def build_message(notification: Notification) -> EmailMultiAlternatives:
    booking = notification.booking
    method = method_for(notification)
    zone = booking.instrument.zone
    moved_from = _moved_from(notification, zone)
    context = {
        "moved_from": moved_from,
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
    if notification.kind == Notification.Kind.CANCELLATION and booking.state == Booking.State.REJECTED:
        subject = f"预约未获批准 Booking rejected: {booking.instrument.name_zh}"
    elif moved_from is not None:
        subject = f"预约改期 Booking rescheduled ({state_en}): {booking.instrument.name_zh}"
    message = EmailMultiAlternatives(subject=subject, body=body, to=[booking.user.email])
    message.extra_headers["X-InstrumentShare-Booking"] = str(booking.pk)
    calendar = MIMEText(ical.invitation(booking, method).decode(), "calendar", "utf-8")
    calendar.set_param("method", method)
    calendar.add_header("Content-Disposition", "attachment", filename="invite.ics")
    message.attach(calendar)
    return message


BATCH = 50  # rows locked, mailed and marked per transaction: also the most a crash mid-batch can mail twice


class ServerUnavailable(ConnectionError):
    """The mail server could not be reached: the rest of the batch waits for a later try."""


class Mailer:
    """One SMTP connection for many messages, opened at the first and reopened after a failed one."""

    def __init__(self):
        self.backend = get_connection()
        self.opened = False

    def send(self, message: EmailMultiAlternatives) -> None:
        if not self.opened:
            try:
                self.backend.open()
            except Exception as error:
                raise ServerUnavailable(str(error) or type(error).__name__) from error
            self.opened = True
        try:
            self.backend.send_messages([message])
        except Exception:
            self.close()  # the connection may be broken: the next message starts afresh
            raise

    def close(self) -> None:
        if self.opened:
            self.opened = False
            try:
                self.backend.close()
            except Exception as error:  # noqa: BLE001 - a connection being dropped may fail to say goodbye
                logger.info("closing the mail connection: %s", error)

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _superseded(rows: list[Notification], now: dt.datetime) -> set[int]:
    """Rows not worth mailing any more: an invitation a later revision of the same booking supersedes
    (only the newest is mailed), and a reminder of a revision the booking has left (moved, cancelled:
    the moved booking gets a reminder of its own) or of a booking that has already started."""
    newest = dict(Notification.objects.filter(booking_id__in={row.booking_id for row in rows})
                  .exclude(kind=Notification.Kind.REMINDER).values("booking_id")
                  .annotate(top=Max("sequence")).values_list("booking_id", "top"))
    stale = set()
    for row in rows:
        booking = row.booking
        if row.kind == Notification.Kind.REMINDER:
            if booking.state != Booking.State.CONFIRMED or booking.sequence != row.sequence or booking.start <= now:
                stale.add(row.pk)
        elif newest.get(row.booking_id, -1) > row.sequence:
            stale.add(row.pk)
    return stale


def _send_locked(ids: list[int], mailer: Mailer, *, raise_errors: bool) -> int:
    """Send the rows of ``ids`` that are still pending and not locked by another worker. Returns how many went.

    The rows stay locked (SKIP LOCKED) from the read to the commit that marks them, so two workers given
    the same row send it once, and a row already sent is left alone. A failed message is counted on its
    row and left pending for the next sweep; the others go on, unless the server cannot be reached at
    all (``ServerUnavailable`` is raised after the commit). A crash between the SMTP hand-off and the
    commit can send a batch again later: e-mail is at-least-once, never lost.
    """
    failure: Exception | None = None
    with transaction.atomic():
        rows = list(Notification.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("booking__instrument__lab", "booking__user")
                    .filter(pk__in=ids, state=Notification.State.PENDING).order_by("id"))
        if not rows:
            return 0
        superseded = _superseded(rows, timezone.now())
        sent: list[int] = []
        for notification in rows:
            if notification.pk in superseded or not notification.booking.user.email:
                stale = notification.pk in superseded
                notification.state = Notification.State.SENT if stale else Notification.State.FAILED
                notification.last_error = "superseded by a later revision" if stale else "no e-mail address"
                notification.save(update_fields=["state", "last_error"])
                continue
            try:
                mailer.send(build_message(notification))
            except Exception as error:
                failure = failure or error
                logger.warning("notification %s failed: %s", notification.pk, error)
                Notification.objects.filter(pk=notification.pk).update(attempts=F("attempts") + 1,
                                                                       last_error=str(error)[:500])
                if isinstance(error, ServerUnavailable):
                    failure = error
                    break
            else:
                sent.append(notification.pk)
        Notification.objects.filter(pk__in=sent).update(state=Notification.State.SENT, sent_at=timezone.now(),
                                                         attempts=F("attempts") + 1)
    if failure is not None and (raise_errors or isinstance(failure, ServerUnavailable)):
        raise failure
    return len(sent)


def send(notification_id: int) -> bool:
    """Send one outbox row if it is still pending. True when this call sent it; a failed send raises
    (after counting the attempt on the row), so the task retries it."""
    with Mailer() as mailer:
        return _send_locked([notification_id], mailer, raise_errors=True) == 1


def send_all(notification_ids: list[int]) -> int:
    """Send these outbox rows over one connection, in batches. A bad address does not stop the others."""
    sent = 0
    with Mailer() as mailer:
        for index in range(0, len(notification_ids), BATCH):
            try:
                sent += _send_locked(notification_ids[index:index + BATCH], mailer, raise_errors=False)
            except ServerUnavailable:
                logger.warning("mail server unavailable: the outbox sweep sends the rest later")
                break
    return sent


def pending_ids(*, older_than: dt.timedelta = dt.timedelta(seconds=0), limit: int = 500,
                after_id: int = 0) -> list[int]:
    cutoff = timezone.now() - older_than
    return list(Notification.objects.filter(state=Notification.State.PENDING, created_at__lte=cutoff, attempts__lt=10,
                                            pk__gt=after_id).order_by("id").values_list("id", flat=True)[:limit])


def sweep_outbox(*, older_than: dt.timedelta = dt.timedelta(minutes=1), limit: int = 5000) -> int:
    """Send what is still pending (the broker was down, a worker died), over one SMTP connection, in
    batches. Each row is tried at most once per sweep. Returns how many were sent."""
    sent, after_id = 0, 0
    with Mailer() as mailer:
        while limit > 0:
            ids = pending_ids(older_than=older_than, limit=min(BATCH, limit), after_id=after_id)
            if not ids:
                break
            after_id, limit = ids[-1], limit - len(ids)
            try:
                sent += _send_locked(ids, mailer, raise_errors=False)
            except ServerUnavailable as error:
                logger.warning("mail server unavailable (%s): the next sweep tries again", error)
                break
            except Exception:  # the database, say: leave the rest to the next sweep
                logger.exception("outbox sweep stopped at notification %s", after_id)
                break
    return sent


def queue_due_reminders(*, now: dt.datetime | None = None) -> list[int]:
    """Outbox rows for confirmed bookings starting within the reminder lead. Once per booking revision:
    a booking moved after its reminder went out is reminded of its new time."""
    now = now or timezone.now()
    reminded = Notification.objects.filter(booking=OuterRef("pk"), kind=Notification.Kind.REMINDER,
                                           sequence=OuterRef("sequence"))
    due = Booking.objects.filter(state=Booking.State.CONFIRMED, start__gt=now,
                                 start__lte=now + dt.timedelta(hours=settings.BOOKING_REMINDER_HOURS))
    due = due.filter(~Exists(reminded)).values_list("id", "sequence")
    rows = [Notification(booking_id=booking_id, kind=Notification.Kind.REMINDER, sequence=sequence)
            for booking_id, sequence in due]
    # The unique key (booking, kind, sequence) makes a second run, or a second beat, add nothing.
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return list(Notification.objects.filter(kind=Notification.Kind.REMINDER, state=Notification.State.PENDING,
                                            booking_id__in=[row.booking_id for row in rows]).values_list("id",
                                                                                                         flat=True))
