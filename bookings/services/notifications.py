"""Sending the outbox: bilingual e-mails with the iCalendar part whose MIME method matches.

A sweep sends its rows in batches over one SMTP connection; a task sends its one row.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from email.mime.text import MIMEText
from email.utils import format_datetime, parseaddr

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import OperationalError, connections, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation

from instrumentshare.accounts import queries as people
from instrumentshare.audit.models import AuditEvent
from instrumentshare.audit.services import record
from instrumentshare.core.dependencies import CACHE_DOWN
from instrumentshare.core.errors import Conflict, NotFound

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


class Invitation(EmailMultiAlternatives):
    """The iMIP shape Outlook, Gmail and Apple Mail all take as a meeting (RFC 6047):

    multipart/mixed
      multipart/alternative
        text/plain                      the bilingual text
        text/calendar; method=REQUEST   the iTIP message itself, METHOD equal to the MIME parameter
      application/ics  invite.ics       the same calendar as a file, for clients that only import
    """

    def __init__(self, *args, calendar: bytes, method: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        self.attach_alternative(calendar.decode(), "text/calendar")
        self.attach("invite.ics", calendar, "application/ics")

    def _create_mime_attachment(self, content, mimetype):
        if mimetype != "text/calendar":
            return super()._create_mime_attachment(content, mimetype)
        part = MIMEText(content, "calendar", "utf-8")  # base64: the CRLF line ends iCalendar requires survive
        part.set_param("method", self.method)
        return part


def mail_domain() -> str:
    """The domain of the configured sender: Message-IDs are ours, not the host's ("@localhost")."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "instrumentshare.invalid"


def message_id(notification: Notification) -> str:
    """The same Message-ID for every send of one revision (booking, kind, sequence), in the sender's
    domain: a rare second send after a crash is, to the mail client, the message it already has."""
    return f"<booking-{notification.booking_id}.{notification.kind}.{notification.sequence}@{mail_domain()}>"


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


def build_message(notification: Notification, *, now: dt.datetime | None = None) -> EmailMultiAlternatives:
    if notification.kind == Notification.Kind.OFFER:
        return offer_message(notification, now=now)
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
        "series_url": f"{settings.SITE_URL}/bookings/series/{booking.series_id}/" if booking.series_id else "",
    }
    # The template's date filter shows times in the current zone: make that the instrument's, or an
    # instrument abroad is mailed Shanghai's wall-clock time beside its own zone's name.
    with translation.override("en"), timezone.override(zone):
        body = render_to_string("bookings/email/notification.txt", context)
    state_en = "awaiting approval" if booking.state == Booking.State.PENDING else "confirmed"
    subject = SUBJECTS[(notification.kind, method)].format(name=booking.instrument.name_zh, state_en=state_en)
    if notification.kind == Notification.Kind.CANCELLATION and booking.state == Booking.State.REJECTED:
        subject = f"预约未获批准 Booking rejected: {booking.instrument.name_zh}"
    elif moved_from is not None:
        subject = f"预约改期 Booking rescheduled ({state_en}): {booking.instrument.name_zh}"
    headers = {
        "X-InstrumentShare-Booking": str(booking.pk),
        "Message-ID": message_id(notification),
        "Date": format_datetime((now or timezone.now()).astimezone(dt.UTC)),
        "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation replies to a robot
    }
    return Invitation(subject=subject, body=body, to=[booking.user.email], headers=headers,
                      calendar=ical.invitation(booking, method, now=now), method=method)


def offer_message(notification: Notification, *, now: dt.datetime | None = None) -> EmailMultiAlternatives:
    """A waiting-list offer: the held time, until when it is held, and the page to accept or decline it.
    No calendar part: nothing is booked until the person accepts."""
    hold = notification.booking
    entry = hold.waitlist_offer
    zone = hold.instrument.zone
    context = {
        "instrument": hold.instrument, "time_zone": hold.instrument.time_zone,
        "local_start": hold.start.astimezone(zone), "local_end": hold.end.astimezone(zone),
        "expires": entry.offer_expires_at.astimezone(zone), "url": f"{settings.SITE_URL}/bookings/waitlist/",
    }
    with translation.override("en"):
        body = render_to_string("bookings/email/waitlist_offer.txt", context)
    headers = {
        "X-InstrumentShare-Waitlist": str(entry.pk), "Message-ID": message_id(notification),
        "Date": format_datetime((now or timezone.now()).astimezone(dt.UTC)), "Auto-Submitted": "auto-generated",
    }
    subject = f"候补空出 Waiting list: {hold.instrument.name_zh} is free for you"
    return EmailMultiAlternatives(subject=subject, body=body, to=[hold.user.email], headers=headers)


def next_attempt(attempts: int, now: dt.datetime) -> dt.datetime:
    """When to try again after ``attempts`` failed tries: 1, 2, 4 ... minutes, at most an hour
    between tries, never given up (OUTBOX_BACKOFF_FIRST_SECONDS, OUTBOX_BACKOFF_CEILING_SECONDS)."""
    first = dt.timedelta(seconds=settings.OUTBOX_BACKOFF_FIRST_SECONDS)
    ceiling = dt.timedelta(seconds=settings.OUTBOX_BACKOFF_CEILING_SECONDS)
    return now + min(ceiling, first * 2 ** min(max(attempts - 1, 0), 20))


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
        if row.kind == Notification.Kind.OFFER:
            if booking.state != Booking.State.HELD:   # accepted, declined or lapsed before it went out
                stale.add(row.pk)
        elif row.kind == Notification.Kind.REMINDER:
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
    all (``ServerUnavailable`` is raised after the commit). A database error at the commit that marks
    the mailed rows (a restart, a killed connection) is retried on a new connection for about 8 s. Only
    a crash of the process between the SMTP hand-off and that commit sends a batch again later, with the
    same Message-IDs: e-mail is at least once, never lost, and seen once.
    """
    failure: Exception | None = None
    sent: list[int] = []
    try:
        failure = _send_and_mark(ids, mailer, sent)
    except OperationalError:
        if not sent:
            raise
        # The mail went out but the commit that marks it failed (the database restarted, a
        # connection was killed): mark it on a new connection, so the sweep does not send it again.
        _mark_sent_retrying(sent)
    if failure is not None and (raise_errors or isinstance(failure, ServerUnavailable)):
        raise failure
    return len(sent)


MARK_TRIES = 6  # 0.25 + 0.5 + 1 + 2 + 4 s: a restart or a failover


def _mark_sent_retrying(sent: list[int]) -> None:
    for attempt in range(MARK_TRIES):
        try:
            for each in connections.all():
                each.close_if_unusable_or_obsolete()
            Notification.objects.filter(pk__in=sent, state=Notification.State.PENDING).update(
                state=Notification.State.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1)
            logger.warning("notifications %s marked sent after a database error", sent)
            return
        except OperationalError:
            if attempt == MARK_TRIES - 1:
                raise
            for each in connections.all():
                each.close()
            time.sleep(0.25 * 2 ** attempt)


def _send_and_mark(ids: list[int], mailer: Mailer, sent: list[int]) -> Exception | None:
    """Mail the pending rows of ``ids`` (appending to ``sent``) and mark them, in one transaction."""
    failure: Exception | None = None
    with transaction.atomic():
        rows = list(Notification.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("booking__instrument__lab", "booking__user")
                    .filter(pk__in=ids, state=Notification.State.PENDING).order_by("id"))
        if not rows:
            return None
        superseded = _superseded(rows, timezone.now())
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
                Notification.objects.filter(pk=notification.pk).update(
                    attempts=F("attempts") + 1, last_error=str(error)[:500],
                    next_attempt_at=next_attempt(notification.attempts + 1, timezone.now()))
                if isinstance(error, ServerUnavailable):
                    failure = error
                    break
            else:
                sent.append(notification.pk)
        Notification.objects.filter(pk__in=sent).update(state=Notification.State.SENT, sent_at=timezone.now(),
                                                         attempts=F("attempts") + 1)
    return failure


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
    """Pending rows due for a try: no attempt cap (a row is never abandoned), only the backoff."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return list(Notification.objects.filter(due, state=Notification.State.PENDING, created_at__lte=now - older_than,
                                            pk__gt=after_id).order_by("id").values_list("id", flat=True)[:limit])


def overdue(*, minutes: int | None = None, now: dt.datetime | None = None) -> QuerySet[Notification]:
    """Pending longer than OUTBOX_ALERT_MINUTES: the metric, the admin's and the lab page's alert."""
    from ..queries import overdue_notifications

    return overdue_notifications(minutes=minutes, now=now)


@transaction.atomic
def send_again(*, actor, notification_ids: list[int]) -> int:
    """Put failed (or long-pending) rows back in the outbox for the next sweep, with a fresh backoff."""
    rows = Notification.objects.select_for_update().filter(pk__in=notification_ids).exclude(
        state=Notification.State.SENT)
    changed = list(rows.values_list("id", "booking_id"))
    rows.update(state=Notification.State.PENDING, next_attempt_at=None, last_error="")
    for notification_id, booking_id in changed:
        record(actor=actor, action="notification.requeued", target=Booking.objects.get(pk=booking_id),
               after={"notification_id": notification_id})
    return len(changed)


def resend_for_lab(*, actor, notification_id: int) -> Notification:
    """A lab manager sends one of the lab's unsent e-mails (failed, or pending too long) again, now:
    a fresh backoff, audited, the task after commit (the sweep if the broker is down). Another lab's
    row is not found; one already sent is a conflict."""
    with transaction.atomic():
        row = Notification.objects.select_for_update(of=("self",)).select_related("booking__instrument").filter(
            pk=notification_id).first()
        if row is None or not people.is_lab_manager(actor, row.booking.instrument.lab_id):
            raise NotFound("not_found", "No such e-mail.")
        if row.state == Notification.State.SENT:
            raise Conflict("already_sent", "This e-mail has been sent.")
        send_again(actor=actor, notification_ids=[row.pk])
        transaction.on_commit(lambda: send_one_soon(row.pk))   # this row alone, as the manager asked
    row.refresh_from_db()
    return row


# While a wake-up is queued and has not started, new rows need no task of their own: the sweep it
# starts reads them. The key lives this long at most, should that task be lost before it starts.
WAKE_KEY = "outbox:wake"
WAKE_SECONDS = 30


def wake_outbox() -> None:
    """After a commit that wrote outbox rows: have a worker send what is due, now.

    One task per wake-up, not one per message: the first commit sets ``WAKE_KEY`` (one Redis round
    trip) and queues ``bookings.tasks.send_outbox``, which deletes the key as it starts and sends every
    due row over one SMTP connection; commits in between find the key set and queue nothing, since that
    sweep has not read the rows yet. So a quiet system sends each invitation at once, and a busy one
    sends many per task instead of publishing a task per booking. The broker or the cache down: the
    rows wait for the beat's sweep (every minute), as before."""
    from ..tasks import send_outbox

    try:
        if not cache.add(WAKE_KEY, 1, WAKE_SECONDS):
            return
    except CACHE_DOWN as error:
        logger.warning("outbox wake-up: the cache is unavailable (%s); queueing the sweep anyway", error)
    try:
        send_outbox.apply_async(retry=False)
    except Exception as error:  # noqa: BLE001 - broker down: the beat's sweep sends the rows later
        logger.warning("could not queue the outbox sweep (%s); the beat's sweep sends the rows", error)
        _woken()


def send_one_soon(notification_id: int) -> None:
    """Queue the task that sends this one row (the beat's sweep sends it if the broker is down)."""
    from ..tasks import send_notification

    try:
        send_notification.apply_async((notification_id,), retry=False)
    except Exception as error:  # noqa: BLE001 - broker down: the beat's sweep sends it later
        logger.warning("could not queue notification %s (%s); the beat's sweep sends it", notification_id, error)


def _woken() -> None:
    """The wake-up is being handled (or could not be queued): the next commit queues another."""
    try:
        cache.delete(WAKE_KEY)
    except CACHE_DOWN:
        pass


def send_woken() -> int:
    """The task a wake-up queues: clear the wake-up first (a row committed from here on queues the next
    one), then send every due row."""
    _woken()
    return sweep_outbox(older_than=dt.timedelta(0))


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
