"""Changes to an instrument that move its bookings, never silently.

Downtime, opening hours and exceptions, the booking rules, unpublishing and revoking a qualification
each run through ``apply_change``: the change is written inside one transaction with the instrument
locked, then the bookings app (``catalog.extensions.booking_changes``) names the open bookings the
instrument's rules would now refuse. A dry run stops there and rolls the change back, so the page and
the API show exactly what saving would affect. Saving with affected bookings needs the manager's
decision: cancel them (the lab's cancellation: CANCEL invitations, no credit penalty, no charge, an
offer to rebook) or keep them (each flagged for its booker). One audit record holds the change's
settlement: the decision, the notice and every affected booking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Invalid

from .extensions import booking_changes
from .models import Instrument

DECISIONS = ("cancel", "keep")


@dataclass(frozen=True)
class AffectedBooking:
    id: int
    user_id: int
    booker: str
    start: dt.datetime
    end: dt.datetime
    state: str
    why: str  # closed, downtime, not_bookable, not_qualified, duration

    def as_dict(self) -> dict:
        return {"id": self.id, "user_id": self.user_id, "booker": self.booker, "start": self.start,
                "end": self.end, "state": self.state, "why": self.why}


@dataclass
class Impact:
    """What a change does (a dry run) or did to the instrument's bookings."""

    affected: list[AffectedBooking] = field(default_factory=list)
    decision: str = ""
    dry_run: bool = False
    result: Any = None  # what the change itself returned (None on a dry run: it was rolled back)


class _RolledBack(Exception):
    def __init__(self, impact: Impact):
        super().__init__("dry run")
        self.impact = impact


def apply_change(*, actor, lock: Callable[[], Instrument], change: Callable[[Instrument], Any],
                 what: str | Callable[[Instrument], str],
                 dry_run: bool = False, decision: str | None = None, notice: str = "", user_id: int | None = None,
                 now: dt.datetime | None = None) -> Impact:
    """Write ``change`` for the instrument ``lock`` returns (locked, the actor's right checked), and settle the
    bookings it affects as the manager decided. ``what`` names the change for the bookers (a downtime's
    times, "new opening hours"); ``notice`` is the manager's own word to them (it defaults to ``what``)."""
    now = now or timezone.now()
    if decision and decision not in DECISIONS:
        raise Invalid("invalid_decision", "Affected bookings are either cancelled or kept (cancel, keep).")
    try:
        with transaction.atomic():
            return _apply(actor, lock, change, what, dry_run, decision, notice, user_id, now)
    except _RolledBack as rolled_back:
        return rolled_back.impact


def settle_within(*, actor, instrument: Instrument, change: Callable[[Instrument], Any], what: str,
                  decision: str, notice: str = "", now: dt.datetime | None = None) -> Impact:
    """``apply_change`` for a change another decision already made, inside the caller's transaction with the
    instrument locked (the bureau approving an exemption): no dry run, the decision given."""
    return _apply(actor, lambda: instrument, change, what, False, decision, notice, None, now or timezone.now())


def _apply(actor, lock, change, what, dry_run, decision, notice, user_id, now) -> Impact:
    instrument = lock()
    what = what(instrument) if callable(what) else what
    part = booking_changes.contributions[0] if booking_changes else None
    # Only what this change makes refused: a booking the rules refused already (say, kept through an
    # earlier downtime) is not this change's to settle.
    refused_before = {booking.id for booking in part.affected(instrument=instrument, now=now, user_id=user_id)} \
        if part else set()
    result = change(instrument)
    affected = [booking for booking in part.affected(instrument=instrument, now=now, user_id=user_id)
                if booking.id not in refused_before] if part else []
    if dry_run:
        raise _RolledBack(Impact(affected=affected, dry_run=True))
    if not affected:
        return Impact(result=result)
    if not decision:
        raise Conflict("bookings_affected",
                       f"This change affects {len(affected)} booking(s): cancel them with a reason or keep them "
                       "(flagged for their bookers).",
                       extra={"bookings": [booking.as_dict() for booking in affected]})
    notice = (notice or "").strip() or what
    part.settle(actor=actor, affected=affected, decision=decision, notice=notice, now=now)
    record(actor=actor, action=f"instrument.bookings_{'cancelled' if decision == 'cancel' else 'kept'}",
           target=instrument, after={"change": what, "decision": decision,
                                     "bookings": [booking.id for booking in affected]}, reason=notice)
    return Impact(affected=affected, decision=decision, result=result)
