"""Time the lab holds on its own instrument for its own work (a sample request's analysis).

A hold is a booking in state ``held``: it blocks the calendar, availability and search exactly as a
booking does, under the same guarantee (on PostgreSQL the exclusion constraint covers held rows; on
SQLite the IMMEDIATE transaction serializes writers and the check below is exact). A lost race is the
same 409 ``slot_taken`` naming the conflicting interval. The lab's own work is not bound by the opening
hours it publishes, nor by notice and horizon; downtime still refuses it. Nobody is invited, charged
or marked a no-show for it: reconciliation settles only confirmed, completed and no-show bookings.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Forbidden, Invalid, NotFound

from ..models import Booking
from ..transitions import MOVES
from .lifecycle import _as_utc, _snapshot
from .rules import conflict_for, constraint_guards_overlap, locked_instrument, raise_conflict


def hold_time(*, actor, instrument_id: int, start: dt.datetime, end: dt.datetime, purpose: str,
              replaces_booking_id: int | None = None, now: dt.datetime | None = None) -> Booking:
    """Hold [start, end) for the lab's work; ``replaces_booking_id`` (an earlier hold) is released in the
    same transaction, so moving a hold never leaves two, nor none when the new time is taken."""
    now = now or timezone.now()
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise Invalid("invalid_range", "The held time must end after it starts.")
    try:
        with transaction.atomic():
            return _hold(actor, instrument_id, start, end, purpose, replaces_booking_id, now)
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            instrument = Instrument.objects.select_related("policy").get(pk=instrument_id)
            buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
            raise_conflict(conflict_for(instrument, start, end, buffer, replaces_booking_id))
        raise


def _hold(actor, instrument_id, start, end, purpose, replaces_booking_id, now) -> Booking:
    instrument = locked_instrument(instrument_id, actor)
    if not people.is_lab_manager(actor, instrument.lab_id):
        raise Forbidden("forbidden", "Only a manager of the instrument's lab holds its time.")
    if instrument.downtimes.filter(start__lt=end, end__gt=start).exists():
        raise Invalid("downtime", "The instrument is out of service then.")
    buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
    if replaces_booking_id is not None:
        release_hold(actor=actor, booking_id=replaces_booking_id, now=now)
    if not constraint_guards_overlap():
        conflict = conflict_for(instrument, start, end, buffer, None)
        if conflict is not None:
            raise_conflict(conflict)
    booking = Booking.objects.create(
        instrument=instrument, user=actor, charged_lab_id=instrument.lab_id, start=start, end=end,
        blocked_until=end + buffer, purpose=(purpose or "")[:2000], is_internal=True, state=Booking.State.HELD,
        created_at=now)
    record(actor=actor, action="booking.held", target=booking, after=_snapshot(booking), now=now)
    return booking


@transaction.atomic
def release_hold(*, actor, booking_id: int, now: dt.datetime | None = None) -> Booking:
    booking = Booking.objects.select_for_update(of=("self",)).select_related("instrument").filter(pk=booking_id).first()
    if booking is None or not people.is_lab_manager(actor, booking.instrument.lab_id):
        raise NotFound("not_found", "No such held time.")
    move = MOVES["release"]
    if booking.state == move.target:
        return booking
    move.check(booking)
    before = _snapshot(booking)
    booking.state, booking.cancelled_by, booking.cancelled_at = move.target, actor, now or timezone.now()
    booking.sequence += 1
    booking.save()
    record(actor=actor, action=move.action, target=booking, before=before, after=_snapshot(booking), now=now)
    return booking
