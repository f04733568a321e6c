"""Settling ended bookings in bulk: completed (there was use) or a no-show (none after the grace period).

Usage decides which is which (it knows what happened at the instrument); bookings moves them, by the
same table as every other move (``bookings.transitions``): one UPDATE per move for a whole chunk, one
audit record per booking, the no-show penalty once per booking through ``credit.penalize``.
"""

from __future__ import annotations

import datetime as dt

from instrumentshare.audit.services import record_many

from ..models import Booking
from ..transitions import MOVES, settled_audit
from . import credit


def settle(*, completed: list[int], no_shows: list[tuple[int, int]], now: dt.datetime, actor=None) -> int:
    """Move these bookings to completed, and these (booking id, user id) to no-show, where they are
    still confirmed; a booking already moved is left alone, so settling twice changes nothing.

    Reconciliation reads each chunk ``FOR UPDATE`` before deciding, so what it asks to move is what
    moves. Returns how many bookings moved.
    """
    users = dict(no_shows)
    moved = 0
    for move, ids in ((MOVES["complete"], completed), (MOVES["no_show"], list(users))):
        if not ids:
            continue
        (source,) = move.sources
        ids = list(Booking.objects.filter(pk__in=ids, state=source).values_list("pk", flat=True))
        Booking.objects.filter(pk__in=ids, state=source).update(state=move.target, updated_at=now)
        record_many(actor=actor, action=move.action, now=now, entries=[
            {"target": ("bookings.booking", pk), **settled_audit(move, source)} for pk in ids])
        if move.penalty:
            credit.penalize([(pk, users[pk]) for pk in ids], kind=move.penalty, now=now, actor=actor)
        moved += len(ids)
    return moved
