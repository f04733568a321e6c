"""The booking lifecycle, one booking at a time: create, approve, reject, cancel, reschedule.

No double booking: inside the transaction the service checks the requested time against
availability (which sees every committed active booking). On SQLite the transaction is
IMMEDIATE, so writers run one at a time and the check is exact. On PostgreSQL the instrument
row is locked for the check, and an exclusion constraint refuses an overlapping active row
whatever happens; a lost race becomes a 409 naming the conflicting interval, never a 500.
Every move follows ``bookings.transitions``: row lock, state check, audit, outbox, idempotent.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core import rows
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound

from ..extensions import booking_parts
from ..models import Booking, Notification
from ..transitions import MOVES
from . import credit
from .notifications import wake_outbox
from .rules import (
    charged_lab_id_for,
    check_credit,
    check_free,
    check_grid,
    check_may_book,
    check_quota,
    check_window,
    conflict_for,
    locked_instrument,
    needs_approval,
    raise_conflict,
)

AUDIT_FIELDS = ("instrument_id", "user_id", "charged_lab_id", "start", "end", "state", "purpose", "sequence")


def _snapshot(booking: Booking) -> dict:
    return {field: getattr(booking, field) for field in AUDIT_FIELDS}


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{name} must carry a time zone offset (e.g. 2026-12-01T09:00:00+08:00).")
    return value.astimezone(dt.UTC)


def _booking_request(start: dt.datetime, end: dt.datetime, purpose: str) -> tuple[dt.datetime, dt.datetime, str]:
    """What every new booking asks first (one booking, or each of a series): times with an offset, in
    UTC, the end after the start, and a purpose."""
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise Invalid("invalid_range", "The booking must end after it starts.")
    purpose = (purpose or "").strip()
    if not purpose:
        raise Invalid("purpose_required", "Say what the booking is for.")
    return start, end, purpose


def _enqueue(booking: Booking, kind: str) -> Notification:
    """Write the outbox row now; wake a worker to send it after commit (``notifications.wake_outbox``)."""
    # Every change raises the sequence, so this (booking, kind, sequence) is new; the unique key guards it.
    notification = rows.insert(Notification(booking=booking, kind=kind, sequence=booking.sequence))
    transaction.on_commit(wake_outbox)
    return notification


def create_booking(*, user, instrument_id: int, start: dt.datetime, end: dt.datetime, purpose: str,
                   lab_id: int | None = None, extras: dict | None = None,
                   now: dt.datetime | None = None) -> Booking:
    """Book an instrument. ``extras`` carries the fields higher apps add to the booking (billing's
    ``account_id``: see ``bookings.extensions.booking_parts``); they check and store their own part."""
    now = now or timezone.now()
    start, end, purpose = _booking_request(start, end, purpose)
    try:
        with transaction.atomic():
            return _create_booking(user, instrument_id, start, end, purpose, lab_id, now, extras or {})
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            instrument = Instrument.objects.select_related("policy").get(pk=instrument_id)
            buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
            raise_conflict(conflict_for(instrument, start, end, buffer, None), user.pk)
        raise


def _create_booking(user, instrument_id, start, end, purpose, lab_id, now, extras: dict, series=None) -> Booking:
    instrument = locked_instrument(instrument_id, user)
    policy = instrument.policy
    check_may_book(user, instrument)
    check_credit(user, instrument)
    check_grid(instrument, policy, start, end)
    check_window(policy, start, end, now)
    charged_lab_id = charged_lab_id_for(user, lab_id)
    parts = [(part, part.prepare(user=user, instrument=instrument, start=start, extras=extras))
             for part in booking_parts.contributions]
    check_quota(instrument, policy, user, charged_lab_id, start, end)
    check_free(instrument, start, end, now, user_id=user.pk)
    internal = catalog_queries.is_internal_user(user, instrument)
    booking = Booking(
        instrument=instrument, user=user, charged_lab_id=charged_lab_id, start=start, end=end,
        blocked_until=end + dt.timedelta(minutes=policy.buffer_minutes), purpose=purpose[:2000],
        is_internal=internal, series=series,
        state=Booking.State.PENDING if needs_approval(policy, internal) else Booking.State.CONFIRMED,
    )
    rows.insert(booking)  # an overlapping row fails here on PostgreSQL; create_booking answers 409 after rollback
    audited = _snapshot(booking)
    for part, state in parts:   # the higher apps' rows, in this transaction; their fields join the audit record
        audited.update(part.save(booking=booking, state=state) or {})
    if all(hasattr(part, "new_facts") for part, _state in parts):   # what queries.with_part_facts would read
        booking.part_facts = {name: value for part, state in parts
                              for name, value in part.new_facts(booking=booking, state=state).items()}
    record(actor=user, action=f"booking.created_{booking.state}", target=booking, after=audited, new_target=True)
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


def _moved(booking: Booking, move, *, actor, before: dict, reason: str = "", **recorded) -> Booking:
    """Finish a move of ``bookings.transitions``: its target state, a new revision (SEQUENCE), the row,
    its audit record and its outbox message, all in the caller's transaction."""
    if move.target is not None:
        booking.state = move.target
    booking.sequence += 1
    booking.save()
    record(actor=actor, action=move.action, target=booking, before=before, after={**_snapshot(booking), **recorded},
           reason=reason)
    if move.notify:
        _enqueue(booking, move.notify)
    if move.frees_time:   # someone on the instrument's waiting list may be offered the time freed
        instrument_id = booking.instrument_id
        transaction.on_commit(lambda: _time_freed(instrument_id))
    return booking


def _time_freed(instrument_id: int) -> None:
    from .waitlist import time_freed

    time_freed(instrument_id)


@transaction.atomic
def approve_booking(*, actor, booking_id: int, now: dt.datetime | None = None) -> Booking:
    booking = _visible_locked_booking(actor, booking_id)
    if not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise Forbidden("forbidden", "Only a manager of the instrument's lab approves bookings.")
    move = MOVES["approve"]
    if booking.state == move.target:
        return booking  # approved already
    move.check(booking)
    before = _snapshot(booking)
    booking.decided_by, booking.decided_at = actor, now or timezone.now()
    return _moved(booking, move, actor=actor, before=before)


@transaction.atomic
def reject_booking(*, actor, booking_id: int, reason: str, now: dt.datetime | None = None) -> Booking:
    booking = _visible_locked_booking(actor, booking_id)
    if not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise Forbidden("forbidden", "Only a manager of the instrument's lab rejects bookings.")
    move = MOVES["reject"]
    if booking.state == move.target:
        return booking
    move.check(booking)
    if not (reason or "").strip():
        raise Invalid("reason_required", "Give the booker a reason.")
    before = _snapshot(booking)
    booking.decided_by, booking.decided_at, booking.reason = actor, now or timezone.now(), reason[:2000]
    return _moved(booking, move, actor=actor, before=before, reason=reason)


@transaction.atomic
def cancel_booking(*, actor, booking_id: int, reason: str = "", now: dt.datetime | None = None) -> Booking:
    """The booker cancels (late inside the window is recorded for billing), or the lab with a reason."""
    return cancel_visible(actor=actor, booking_id=booking_id, reason=reason, now=now or timezone.now())


def cancel_visible(*, actor, booking_id: int, reason: str, now: dt.datetime) -> Booking:
    """``cancel_booking``'s rules inside the caller's transaction (a series cancels its occurrences here)."""
    booking = _visible_locked_booking(actor, booking_id)
    by_lab = booking.user_id != actor.pk
    if by_lab and not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise Forbidden("forbidden", "Only the booker or the instrument's lab may cancel.")
    return _cancel(booking, MOVES["cancel_by_lab" if by_lab else "cancel"], actor=actor, reason=reason, now=now)


def cancel_for_change(*, actor, booking_id: int, reason: str, now: dt.datetime) -> Booking:
    """The lab cancels a booking a change to the instrument displaced (``catalog.impact``): always the lab's
    cancellation, even of a manager's own booking, so no credit penalty and no late-cancellation charge.
    The caller holds the instrument and has checked that the actor manages it."""
    return _cancel(_locked_booking(booking_id), MOVES["cancel_by_lab"], actor=actor, reason=reason, now=now)


def _cancel(booking: Booking, move, *, actor, reason: str, now: dt.datetime) -> Booking:
    by_lab = move.name == "cancel_by_lab"
    if booking.state == move.target:
        return booking
    move.check(booking)
    if booking.start <= now:
        raise Conflict("already_started", "A booking that has started cannot be cancelled.")
    if by_lab and not (reason or "").strip():
        raise Invalid("reason_required", "The lab must give the booker a reason.")
    window = dt.timedelta(hours=booking.instrument.policy.cancellation_window_hours)
    late = (not by_lab) and booking.state == Booking.State.CONFIRMED and booking.start - now < window
    before = _snapshot(booking)
    booking.cancelled_by, booking.cancelled_at, booking.reason = actor, now, (reason or "")[:2000]
    booking.late_cancellation = late
    _moved(booking, move, actor=actor, before=before, reason=reason or "", late_cancellation=late)
    if late and move.penalty:
        credit.penalize([(booking.pk, booking.user_id)], kind=move.penalty, now=now)
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
            raise_conflict(conflict_for(booking.instrument, start, end, buffer, booking_id), actor.pk)
        raise


def _reschedule(actor, booking_id, start, end, now) -> Booking:
    booking = _visible_locked_booking(actor, booking_id)
    if booking.user_id != actor.pk:
        raise Forbidden("forbidden", "Only the booker may reschedule; the lab cancels with a reason instead.")
    move = MOVES["reschedule"]
    move.check(booking)
    if booking.start <= now:
        raise Conflict("already_started", "A booking that has started cannot be moved.")
    if (booking.start, booking.end) == (start, end):
        return booking
    instrument = locked_instrument(booking.instrument_id, actor)
    policy = instrument.policy
    check_may_book(actor, instrument)
    check_grid(instrument, policy, start, end)
    check_window(policy, start, end, now)
    check_quota(instrument, policy, actor, booking.charged_lab_id, start, end, exclude_booking_id=booking.pk)
    for part in booking_parts.contributions:   # billing: the account is still chargeable on the new day
        part.check_move(booking=booking, start=start)
    check_free(instrument, start, end, now, exclude_booking_id=booking.pk, user_id=actor.pk)
    before = _snapshot(booking)
    booking.start, booking.end = start, end
    booking.blocked_until = end + dt.timedelta(minutes=policy.buffer_minutes)
    booking.state = Booking.State.PENDING if needs_approval(policy, booking.is_internal) else booking.state
    try:
        with transaction.atomic():
            return _moved(booking, move, actor=actor, before=before)
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            raise_conflict(conflict_for(instrument, start, end, booking.blocked_until - end, booking.pk), actor.pk)
        raise
