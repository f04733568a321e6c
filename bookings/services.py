"""The booking lifecycle. Every transition: row lock, state re-check, audit, outbox, idempotent.

No double booking: inside the transaction the service checks the requested time against
availability (which sees every committed active booking). On SQLite the transaction is
IMMEDIATE, so writers run one at a time and the check is exact. On PostgreSQL the instrument
row is locked for the check, and an exclusion constraint refuses an overlapping active row
whatever happens; a lost race becomes a 409 naming the conflicting interval, never a 500.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from catalog import queries as catalog_queries
from catalog.models import BookingPolicy, Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound

from . import availability
from .extensions import booking_parts
from .models import Booking, CreditEvent, Notification, UserCredit

logger = logging.getLogger(__name__)

AUDIT_FIELDS = ("instrument_id", "user_id", "charged_lab_id", "start", "end", "state", "purpose", "sequence")


def _snapshot(booking: Booking) -> dict:
    return {field: getattr(booking, field) for field in AUDIT_FIELDS}


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{name} must carry a time zone offset (e.g. 2026-12-01T09:00:00+08:00).")
    return value.astimezone(dt.UTC)


# --- rules --------------------------------------------------------------------------------------


def credit_score(user) -> int:
    credit = UserCredit.objects.filter(user=user).values_list("score", flat=True).first()
    return settings.CREDIT_INITIAL_SCORE if credit is None else credit


def _check_credit(user) -> None:
    score = credit_score(user)
    if score < settings.CREDIT_MIN_TO_BOOK:
        raise Forbidden("credit_too_low",
                        f"Your booking credit is {score}, below {settings.CREDIT_MIN_TO_BOOK}: "
                        "ask the platform administrator to lift the ban.")


def _check_grid(instrument: Instrument, policy: BookingPolicy, start: dt.datetime, end: dt.datetime) -> None:
    minutes = (end - start).total_seconds() / 60
    if minutes < policy.min_minutes:
        raise Invalid("too_short", f"Bookings last at least {policy.min_minutes} minutes.")
    if minutes > policy.max_minutes:
        raise Invalid("too_long", f"Bookings last at most {policy.max_minutes} minutes.")
    zone = instrument.zone
    for name, value in (("start", start), ("end", end)):
        local = value.astimezone(zone)
        if local.second or local.microsecond or (local.hour * 60 + local.minute) % policy.slot_minutes:
            raise Invalid("off_grid", f"The {name} must fall on the {policy.slot_minutes}-minute grid "
                                      f"of the instrument's time zone ({instrument.time_zone}).")


def _check_window(policy: BookingPolicy, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> None:
    if start < now + dt.timedelta(minutes=policy.min_notice_minutes):
        raise Invalid("too_soon", f"Book at least {policy.min_notice_minutes} minutes ahead.")
    if end > now + dt.timedelta(days=policy.horizon_days):
        raise Invalid("beyond_horizon", f"Bookings open {policy.horizon_days} days ahead at most.")


def _conflict_for(instrument: Instrument, start: dt.datetime, end: dt.datetime, buffer: dt.timedelta,
                  exclude_booking_id: int | None) -> Booking | None:
    conflicts = Booking.objects.filter(
        instrument=instrument, state__in=Booking.ACTIVE_STATES, start__lt=end + buffer, blocked_until__gt=start,
    )
    if exclude_booking_id:
        conflicts = conflicts.exclude(pk=exclude_booking_id)
    return conflicts.order_by("start").first()


def _raise_conflict(booking: Booking | None) -> None:
    extra = {}
    if booking is not None:
        extra = {"conflict": {"start": booking.start.isoformat(), "end": booking.blocked_until.isoformat()}}
    raise Conflict("slot_taken", "That time is already booked.", extra=extra)


def _check_free(instrument: Instrument, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                exclude_booking_id: int | None = None) -> None:
    buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
    # Opening hours, exceptions and downtime in one statement. On PostgreSQL the exclusion constraint
    # refuses an overlapping row on insert, and the caller turns that into the same 409 naming the
    # conflicting interval, so the bookings are not read first; elsewhere they are, under the write lock.
    guarded = _constraint_guards_overlap()
    schedule = availability.load_schedule(instrument, start, end, buffer=buffer, bookings=not guarded,
                                          exclude_booking_id=exclude_booking_id)
    opening = availability.opening_intervals(instrument, start, end, rules=schedule.rules,
                                             exceptions=schedule.exceptions)
    if not any(a <= start and end <= b for a, b in opening):
        raise Invalid("closed", "The instrument is not open for the whole of that time.")
    if schedule.downtime:
        reason = instrument.downtimes.filter(start__lt=end, end__gt=start).values_list("reason", flat=True).first()
        raise Invalid("downtime", f"The instrument is out of service then: {reason}")
    if schedule.bookings:
        _raise_conflict(_conflict_for(instrument, start, end, buffer, exclude_booking_id))


def _constraint_guards_overlap() -> bool:
    """Whether the database itself refuses overlapping active bookings (the booking_no_overlap constraint)."""
    return connection.vendor == "postgresql"


def _week_bounds(instrument: Instrument, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    local = start.astimezone(instrument.zone)
    monday = (local - dt.timedelta(days=local.weekday())).date()
    first = dt.datetime.combine(monday, dt.time(), tzinfo=instrument.zone)
    return first.astimezone(dt.UTC), (first + dt.timedelta(days=7)).astimezone(dt.UTC)


def _booked_minutes(queryset) -> int:
    total = queryset.aggregate(total=Sum(F("end") - F("start")))["total"]
    return int(total.total_seconds() // 60) if total else 0


def _check_quota(instrument, policy, user, lab_id, start, end, exclude_booking_id=None) -> None:
    if not policy.max_hours_per_user_week and not policy.max_hours_per_lab_week:
        return
    week_start, week_end = _week_bounds(instrument, start)
    week = Booking.objects.filter(instrument=instrument, state__in=(Booking.State.PENDING, Booking.State.CONFIRMED),
                                  start__gte=week_start, start__lt=week_end).exclude(pk=exclude_booking_id)
    wanted = int((end - start).total_seconds() // 60)
    if policy.max_hours_per_user_week and _booked_minutes(week.filter(user=user)) + wanted > \
            policy.max_hours_per_user_week * 60:
        raise Forbidden("quota_exceeded", f"You may book {policy.max_hours_per_user_week} h a week on this instrument.")
    if lab_id is not None and policy.max_hours_per_lab_week and \
            _booked_minutes(week.filter(charged_lab_id=lab_id)) + wanted > \
            policy.max_hours_per_lab_week * 60:
        raise Forbidden("quota_exceeded", f"Your lab may book {policy.max_hours_per_lab_week} h a week here.")


def _charged_lab_id_for(user, lab_id: int | None) -> int | None:
    lab_ids = people.member_lab_ids(user)
    if lab_id is not None:
        if lab_id not in lab_ids:
            raise Forbidden("account_not_allowed", "You may only charge a lab you belong to.")
        return lab_id
    if lab_ids:
        return min(lab_ids)  # the first lab the user is in, as billing's default account
    return None  # an external person with no lab: billed to their organization later


def _locked_instrument(instrument_id: int, user) -> Instrument:
    instrument = (Instrument.objects.select_for_update(no_key=True, of=("self",))
                  .select_related("policy", "lab").filter(pk=instrument_id).first())
    if instrument is None or not catalog_queries.can_see(user, instrument):
        raise NotFound("not_found", "No such instrument.")
    return instrument


def _check_may_book(user, instrument: Instrument) -> None:
    allowed, reason = catalog_queries.may_book(user, instrument)
    if not allowed:
        messages = {
            "not_published": "This instrument is not open for booking yet.",
            "out_of_service": "This instrument is out of service.",
            "internal_only": "This instrument is shared only inside its organization.",
            "not_shared": "This instrument is not shared.",
        }
        raise Forbidden(reason, messages.get(reason, "You may not book this instrument."))
    if instrument.policy.mode == BookingPolicy.Mode.SAMPLES:
        raise Invalid("samples_only", "This instrument takes sample submissions only, not time bookings.")
    if instrument.policy.qualification_required and not catalog_queries.is_qualified(user, instrument):
        raise Forbidden("not_qualified", "You need training on this instrument first; request it on its page.")


def _needs_approval(policy: BookingPolicy, internal: bool) -> bool:
    return policy.approval == BookingPolicy.Approval.ALL or (
        policy.approval == BookingPolicy.Approval.EXTERNAL and not internal
    )


def _enqueue(booking: Booking, kind: str) -> Notification:
    """Write the outbox row now; try to hand it to a worker after commit."""
    # Every change raises the sequence, so this (booking, kind, sequence) is new; the unique key guards it.
    notification = Notification.objects.create(booking=booking, kind=kind, sequence=booking.sequence)
    transaction.on_commit(lambda: _dispatch(notification.pk))
    return notification


def _dispatch(notification_id: int) -> None:
    from .tasks import send_notification

    try:
        send_notification.delay(notification_id)
    except Exception as error:  # noqa: BLE001 - broker down: the outbox sweep sends it later
        logger.warning("could not enqueue notification %s (%s); the outbox sweep will send it", notification_id,
                       error)


# --- services ----------------------------------------------------------------------------------


def create_booking(*, user, instrument_id: int, start: dt.datetime, end: dt.datetime, purpose: str,
                   lab_id: int | None = None, extras: dict | None = None,
                   now: dt.datetime | None = None) -> Booking:
    """Book an instrument. ``extras`` carries the fields higher apps add to the booking (billing's
    ``account_id``: see ``bookings.extensions.booking_parts``); they check and store their own part."""
    now = now or timezone.now()
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise Invalid("invalid_range", "The booking must end after it starts.")
    purpose = (purpose or "").strip()
    if not purpose:
        raise Invalid("purpose_required", "Say what the booking is for.")
    try:
        with transaction.atomic():
            return _create_booking(user, instrument_id, start, end, purpose, lab_id, now, extras or {})
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            instrument = Instrument.objects.select_related("policy").get(pk=instrument_id)
            buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
            _raise_conflict(_conflict_for(instrument, start, end, buffer, None))
        raise


def _create_booking(user, instrument_id, start, end, purpose, lab_id, now, extras: dict) -> Booking:
    instrument = _locked_instrument(instrument_id, user)
    policy = instrument.policy
    _check_may_book(user, instrument)
    _check_credit(user)
    _check_grid(instrument, policy, start, end)
    _check_window(policy, start, end, now)
    charged_lab_id = _charged_lab_id_for(user, lab_id)
    parts = [(part, part.prepare(user=user, instrument=instrument, start=start, extras=extras))
             for part in booking_parts.contributions]
    _check_quota(instrument, policy, user, charged_lab_id, start, end)
    _check_free(instrument, start, end, now)
    internal = catalog_queries.is_internal_user(user, instrument)
    booking = Booking(
        instrument=instrument, user=user, charged_lab_id=charged_lab_id, start=start, end=end,
        blocked_until=end + dt.timedelta(minutes=policy.buffer_minutes), purpose=purpose[:2000],
        is_internal=internal,
        state=Booking.State.PENDING if _needs_approval(policy, internal) else Booking.State.CONFIRMED,
    )
    booking.save()  # an overlapping row fails here on PostgreSQL; create_booking answers 409 after the rollback
    audited = _snapshot(booking)
    for part, state in parts:   # the higher apps' rows, in this transaction; their fields join the audit record
        audited.update(part.save(booking=booking, state=state) or {})
    record(actor=user, action=f"booking.created_{booking.state}", target=booking, after=audited)
    _enqueue(booking, Notification.Kind.INVITATION)
    return booking


def _locked_booking(booking_id: int) -> Booking:
    booking = (Booking.objects.select_for_update(of=("self",)).select_related("instrument", "instrument__policy")
               .filter(pk=booking_id).first())
    if booking is None:
        raise NotFound("not_found", "No such booking.")
    return booking


def can_see_booking(user, booking: Booking) -> bool:
    return booking.user_id == user.pk or people.is_lab_manager(user, booking.instrument.lab_id) or \
        people.is_platform_admin(user)


def _visible_locked_booking(user, booking_id: int) -> Booking:
    booking = _locked_booking(booking_id)
    if not can_see_booking(user, booking):
        raise NotFound("not_found", "No such booking.")
    return booking


@transaction.atomic
def approve_booking(*, actor, booking_id: int, now: dt.datetime | None = None) -> Booking:
    booking = _visible_locked_booking(actor, booking_id)
    if not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise Forbidden("forbidden", "Only a manager of the instrument's lab approves bookings.")
    if booking.state == Booking.State.CONFIRMED:
        return booking  # approved already
    if booking.state != Booking.State.PENDING:
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be approved.")
    before = _snapshot(booking)
    booking.state = Booking.State.CONFIRMED
    booking.decided_by, booking.decided_at = actor, now or timezone.now()
    booking.sequence += 1
    booking.save()
    record(actor=actor, action="booking.approved", target=booking, before=before, after=_snapshot(booking))
    _enqueue(booking, Notification.Kind.INVITATION)
    return booking


@transaction.atomic
def reject_booking(*, actor, booking_id: int, reason: str, now: dt.datetime | None = None) -> Booking:
    booking = _visible_locked_booking(actor, booking_id)
    if not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise Forbidden("forbidden", "Only a manager of the instrument's lab rejects bookings.")
    if booking.state == Booking.State.REJECTED:
        return booking
    if booking.state != Booking.State.PENDING:
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be rejected.")
    if not (reason or "").strip():
        raise Invalid("reason_required", "Give the booker a reason.")
    before = _snapshot(booking)
    booking.state = Booking.State.REJECTED
    booking.decided_by, booking.decided_at, booking.reason = actor, now or timezone.now(), reason[:2000]
    booking.sequence += 1
    booking.save()
    record(actor=actor, action="booking.rejected", target=booking, before=before, after=_snapshot(booking),
           reason=reason)
    _enqueue(booking, Notification.Kind.CANCELLATION)
    return booking


@transaction.atomic
def cancel_booking(*, actor, booking_id: int, reason: str = "", now: dt.datetime | None = None) -> Booking:
    """The booker cancels (late inside the window is recorded for billing), or the lab with a reason."""
    now = now or timezone.now()
    booking = _visible_locked_booking(actor, booking_id)
    by_lab = booking.user_id != actor.pk
    if by_lab and not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise Forbidden("forbidden", "Only the booker or the instrument's lab may cancel.")
    if booking.state == Booking.State.CANCELLED:
        return booking
    if booking.state not in (Booking.State.PENDING, Booking.State.CONFIRMED):
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be cancelled.")
    if booking.start <= now:
        raise Conflict("already_started", "A booking that has started cannot be cancelled.")
    if by_lab and not (reason or "").strip():
        raise Invalid("reason_required", "The lab must give the booker a reason.")
    window = dt.timedelta(hours=booking.instrument.policy.cancellation_window_hours)
    late = (not by_lab) and booking.state == Booking.State.CONFIRMED and booking.start - now < window
    before = _snapshot(booking)
    booking.state = Booking.State.CANCELLED
    booking.cancelled_by, booking.cancelled_at, booking.reason = actor, now, (reason or "")[:2000]
    booking.late_cancellation = late
    booking.sequence += 1
    booking.save()
    record(actor=actor, action="booking.cancelled_by_lab" if by_lab else "booking.cancelled", target=booking,
           before=before, after={**_snapshot(booking), "late_cancellation": late}, reason=reason or "")
    if late:
        _penalize(booking.user, booking, "late_cancel", settings.CREDIT_LATE_CANCEL_PENALTY, actor=None)
    _enqueue(booking, Notification.Kind.CANCELLATION)
    return booking


def reschedule_booking(*, actor, booking_id: int, start: dt.datetime, end: dt.datetime,
                       now: dt.datetime | None = None) -> Booking:
    """Same booking, new time, checked like a new one (approval again if the policy asks)."""
    now = now or timezone.now()
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise Invalid("invalid_range", "The booking must end after it starts.")
    try:
        with transaction.atomic():
            return _reschedule(actor, booking_id, start, end, now)
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            booking = Booking.objects.select_related("instrument__policy").get(pk=booking_id)
            buffer = dt.timedelta(minutes=booking.instrument.policy.buffer_minutes)
            _raise_conflict(_conflict_for(booking.instrument, start, end, buffer, booking_id))
        raise


def _reschedule(actor, booking_id, start, end, now) -> Booking:
    booking = _visible_locked_booking(actor, booking_id)
    if booking.user_id != actor.pk:
        raise Forbidden("forbidden", "Only the booker may reschedule; the lab cancels with a reason instead.")
    if booking.state not in (Booking.State.PENDING, Booking.State.CONFIRMED):
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be rescheduled.")
    if booking.start <= now:
        raise Conflict("already_started", "A booking that has started cannot be moved.")
    if (booking.start, booking.end) == (start, end):
        return booking
    instrument = _locked_instrument(booking.instrument_id, actor)
    policy = instrument.policy
    _check_may_book(actor, instrument)
    _check_grid(instrument, policy, start, end)
    _check_window(policy, start, end, now)
    _check_quota(instrument, policy, actor, booking.charged_lab_id, start, end, exclude_booking_id=booking.pk)
    for part in booking_parts.contributions:   # billing: the account is still chargeable on the new day
        part.check_move(booking=booking, start=start)
    _check_free(instrument, start, end, now, exclude_booking_id=booking.pk)
    before = _snapshot(booking)
    booking.start, booking.end = start, end
    booking.blocked_until = end + dt.timedelta(minutes=policy.buffer_minutes)
    booking.state = Booking.State.PENDING if _needs_approval(policy, booking.is_internal) else booking.state
    booking.sequence += 1
    try:
        with transaction.atomic():
            booking.save()
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            _raise_conflict(_conflict_for(instrument, start, end, booking.blocked_until - end, booking.pk))
        raise
    record(actor=actor, action="booking.rescheduled", target=booking, before=before, after=_snapshot(booking))
    _enqueue(booking, Notification.Kind.INVITATION)
    return booking


@transaction.atomic
def mark_completed(*, actor, booking_id: int) -> Booking:
    booking = _locked_booking(booking_id)
    if booking.state == Booking.State.COMPLETED:
        return booking
    if booking.state != Booking.State.CONFIRMED:
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be completed.")
    before = _snapshot(booking)
    booking.state = Booking.State.COMPLETED
    booking.save(update_fields=["state", "updated_at"])
    record(actor=actor, action="booking.completed", target=booking, before=before, after=_snapshot(booking))
    return booking


@transaction.atomic
def mark_no_show(*, actor, booking_id: int) -> Booking:
    booking = _locked_booking(booking_id)
    if booking.state == Booking.State.NO_SHOW:
        return booking
    if booking.state != Booking.State.CONFIRMED:
        raise Conflict("invalid_state", f"A {booking.state} booking cannot be a no-show.")
    before = _snapshot(booking)
    booking.state = Booking.State.NO_SHOW
    booking.save(update_fields=["state", "updated_at"])
    record(actor=actor, action="booking.no_show", target=booking, before=before, after=_snapshot(booking))
    _penalize(booking.user, booking, "no_show", settings.CREDIT_NO_SHOW_PENALTY, actor=actor)
    return booking


# --- credit ------------------------------------------------------------------------------------


def _penalize(user, booking: Booking | None, kind: str, penalty: int, *, actor) -> None:
    if penalty <= 0:
        return
    _created_event, created = CreditEvent.objects.get_or_create(
        booking=booking, kind=kind, defaults={"user": user, "delta": -penalty, "actor": actor}
    )
    if not created:
        return  # this booking already cost its points
    credit, _created = UserCredit.objects.select_for_update().get_or_create(
        user=user, defaults={"score": settings.CREDIT_INITIAL_SCORE}
    )
    before = credit.score
    UserCredit.objects.filter(pk=credit.pk).update(score=F("score") - penalty)
    record(actor=actor, action=f"credit.{kind}", target=user, before={"score": before},
           after={"score": before - penalty, "booking_id": booking.pk if booking else None})


@transaction.atomic
def lift_ban(*, actor, user, reason: str) -> int:
    """A platform administrator restores a user's credit to the booking threshold."""
    if not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only a platform administrator lifts a booking ban.")
    if not (reason or "").strip():
        raise Invalid("reason_required", "Say why the ban is lifted.")
    credit, _created = UserCredit.objects.select_for_update().get_or_create(
        user=user, defaults={"score": settings.CREDIT_INITIAL_SCORE}
    )
    if credit.score >= settings.CREDIT_MIN_TO_BOOK:
        return credit.score
    before = credit.score
    credit.score = settings.CREDIT_MIN_TO_BOOK
    credit.save(update_fields=["score", "updated_at"])
    CreditEvent.objects.create(user=user, kind="ban_lifted", delta=credit.score - before, actor=actor)
    record(actor=actor, action="credit.ban_lifted", target=user, before={"score": before},
           after={"score": credit.score}, reason=reason)
    return credit.score
