"""Recording real instrument use: logger events, check-in/out, logbook imports, corrections."""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from bookings.models import Booking
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import User
from instrumentshare.accounts.services import token_digest
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Invalid, NotFound
from instrumentshare.core.time import MAX_DURATION

from ..models import LoggerToken, UsageEvent, UsageSession

MAX_EVENTS_PER_REQUEST = 500


# --- logger tokens --------------------------------------------------------------------------------


@transaction.atomic
def create_logger_token(*, actor, instrument_id: int, name: str) -> tuple[LoggerToken, str]:
    instrument = Instrument.objects.filter(pk=instrument_id).first()
    if instrument is None or not people.is_lab_manager(actor, instrument.lab_id):
        raise NotFound("not_found", "No such instrument among the ones you manage.")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("invalid_name", "A logger token needs a name of 1 to 100 characters.")
    prefix = secrets.token_hex(4)
    plain = f"isl_{prefix}_{secrets.token_urlsafe(32)}"
    token = LoggerToken.objects.create(instrument=instrument, name=name, prefix=prefix, digest=token_digest(plain),
                                       created_by=actor)
    record(actor=actor, action="logger_token.created", target=instrument, after={"token_id": token.pk, "name": name})
    return token, plain


@transaction.atomic
def revoke_logger_token(*, actor, token_id: int) -> LoggerToken:
    token = LoggerToken.objects.select_for_update().select_related("instrument").filter(pk=token_id).first()
    if token is None or not people.is_lab_manager(actor, token.instrument.lab_id):
        raise NotFound("not_found", "No such logger token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(actor=actor, action="logger_token.revoked", target=token.instrument, after={"token_id": token.pk})
    return token


def instrument_for_logger_token(plain: str) -> LoggerToken | None:
    if not plain or len(plain) > 200:
        return None
    token = LoggerToken.objects.select_related("instrument").filter(digest=token_digest(plain)).first()
    if token is None or token.revoked_at is not None:
        return None
    now = timezone.now()
    if token.last_seen_at is None or (now - token.last_seen_at).total_seconds() > 60:
        LoggerToken.objects.filter(pk=token.pk).update(last_seen_at=now)
    return token


# --- logger events ----------------------------------------------------------------------------------


def _resolve_user(instrument: Instrument, username: str | None) -> User | None:
    """The person a logger names, if the instrument knows them: a member of its lab, someone
    qualified on it, or someone who booked it. Anyone else is refused, so a logger cannot attach
    its use (and its bill) to an arbitrary account."""
    if not username:
        return None
    known = Q(memberships__lab_id=instrument.lab_id) | Q(qualifications__instrument=instrument) \
        | Q(bookings__instrument=instrument)
    user = User.objects.filter(known, username=username).distinct().first()
    if user is None:
        raise Invalid("unknown_user", f"The instrument does not know a user {username!r}.")
    return user


def _apply_event(instrument: Instrument, event: dict) -> str:
    """Apply one logger event. Returns "created" or "duplicate"; raises Invalid for a bad one."""
    kind = event["type"]
    ref = event["session_id"]
    with transaction.atomic():  # the event row and its effect commit together, or neither does
        try:
            with transaction.atomic():
                UsageEvent.objects.create(instrument=instrument, event_id=event["event_id"], kind=kind,
                                          session_ref=ref, occurred_at=event.get("at") or event.get("start"),
                                          payload={k: str(v) for k, v in event.items() if v is not None})
        except IntegrityError:
            return "duplicate"  # this event id was applied before: a resend after a network fault
        UsageSession.objects.bulk_create(
            [UsageSession(instrument=instrument, external_ref=ref, source=UsageSession.Source.LOGGER)],
            ignore_conflicts=True,
        )
        session = UsageSession.objects.select_for_update().get(instrument=instrument, external_ref=ref)
        # Events may arrive in any order: keep the earliest start and the latest stop.
        if kind in ("start", "session"):
            start = event["at"] if kind == "start" else event["start"]
            session.start = start if session.start is None else min(session.start, start)
        if kind in ("stop", "session"):
            end = event["at"] if kind == "stop" else event["end"]
            session.end = end if session.end is None or session.auto_closed else max(session.end, end)
            session.auto_closed = False
        if event.get("user") and session.user_id is None:
            session.user = _resolve_user(instrument, event["user"])
        if event.get("samples") is not None:
            session.samples = event["samples"]
        if session.start and session.end and session.start > session.end:
            raise Invalid("invalid_order", f"Session {ref} would stop before it starts.")
        if session.start and session.end and session.end - session.start > MAX_DURATION["usage_session"]:
            raise Invalid("too_long", f"Session {ref} would last more than {MAX_DURATION['usage_session'].days} days.")
        session.save()
    return "created"


def ingest_events(*, logger: LoggerToken, events: list[dict]) -> list[dict]:
    """Apply a batch of logger events, each at most once. Per-event results, never all-or-nothing."""
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise Invalid("too_many_events", f"Send at most {MAX_EVENTS_PER_REQUEST} events at a time.")
    results = []
    for event in events:
        try:
            status = _apply_event(logger.instrument, event)
            results.append({"event_id": event["event_id"], "status": status, "detail": ""})
        except Invalid as error:
            results.append({"event_id": event["event_id"], "status": "error", "detail": error.detail})
    return results


# --- check-in / check-out -------------------------------------------------------------------------


def _own_booking(user, booking_id: int) -> Booking:
    booking = Booking.objects.select_for_update(of=("self",)).select_related("instrument").filter(
        pk=booking_id).first()
    if booking is None or booking.user_id != user.pk:
        raise NotFound("not_found", "No such booking.")
    return booking


def check_in_opens(booking: Booking) -> dt.datetime:
    """Check-in opens CHECKIN_OPENS_MINUTES_BEFORE the start and closes when the booking ends."""
    return booking.start - dt.timedelta(minutes=settings.CHECKIN_OPENS_MINUTES_BEFORE)


def may_check_in(booking: Booking, now: dt.datetime) -> bool:
    return booking.state == Booking.State.CONFIRMED and check_in_opens(booking) <= now < booking.end


@transaction.atomic
def check_in(*, user, booking_id: int, now: dt.datetime | None = None) -> UsageSession:
    now = now or timezone.now()
    booking = _own_booking(user, booking_id)
    if booking.state != Booking.State.CONFIRMED:
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be checked in.")
    if not may_check_in(booking, now):
        raise Invalid("checkin_closed", f"Check-in opens {settings.CHECKIN_OPENS_MINUTES_BEFORE} minutes before "
                                        "the booking starts and closes when it ends.")
    ref = f"checkin-{booking.pk}"
    session = UsageSession.objects.filter(instrument=booking.instrument, external_ref=ref).first()
    if session:
        return session  # checked in already
    session = UsageSession.objects.create(instrument=booking.instrument, user=user, booking=booking, start=now,
                                          source=UsageSession.Source.CHECKIN, external_ref=ref)
    record(actor=user, action="usage.checked_in", target=booking, after={"session_id": session.pk, "at": now})
    return session


@transaction.atomic
def check_out(*, user, booking_id: int, samples: int = 0, now: dt.datetime | None = None) -> UsageSession:
    now = now or timezone.now()
    booking = _own_booking(user, booking_id)
    session = UsageSession.objects.select_for_update().filter(instrument=booking.instrument,
                                                             external_ref=f"checkin-{booking.pk}").first()
    if session is None:
        raise Conflict("not_checked_in", "Check in first.")
    if session.end is not None and not session.auto_closed:
        return session  # checked out already
    session.end = max(now, session.start)
    session.auto_closed = False
    session.samples = max(samples, 0)
    session.save(update_fields=["end", "auto_closed", "samples", "updated_at"])
    record(actor=user, action="usage.checked_out", target=booking, after={"session_id": session.pk, "at": now})
    return session
