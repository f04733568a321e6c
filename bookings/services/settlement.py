"""Settling ended bookings in bulk: completed (there was use) or a no-show (none after the grace period).

Usage decides which is which (it knows what happened at the instrument); bookings moves them, by the
same table as every other move (``bookings.transitions``): one UPDATE per move for a whole chunk, one
audit record per booking, the no-show penalty once per booking through ``credit.penalize``.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from instrumentshare.audit.services import record_many
from instrumentshare.core.bulk import pg_array

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
        ids = _move(ids, source=source, target=move.target, now=now)
        audit = settled_audit(move, source)  # one before/after for the chunk: written as JSON once
        record_many(actor=actor, action=move.action, now=now, entries=[
            {"target": ("bookings.booking", pk), **audit} for pk in ids])
        if move.penalty:
            credit.penalize([(pk, users[pk]) for pk in ids], kind=move.penalty, now=now, actor=actor)
        moved += len(ids)
    return moved


def _move(ids: list[int], *, source: str, target: str, now: dt.datetime) -> list[int]:
    """Move those of ``ids`` still in ``source`` to ``target``; the ids moved, in order."""
    if connection.vendor == "postgresql":
        # One statement, the ids as one array parameter: no read before the write, no list of 10^4
        # literals for the server to parse (reconciliation settles a city's month in chunks of them).
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {connection.ops.quote_name(Booking._meta.db_table)} SET state = %s, updated_at = %s "  # noqa: S608 - table name only
                "WHERE id = ANY(%s::bigint[]) AND state = %s RETURNING id", [target, now, pg_array(ids), source])
            return sorted(row[0] for row in cursor.fetchall())
    moved = list(Booking.objects.filter(pk__in=ids, state=source).order_by("pk").values_list("pk", flat=True))
    Booking.objects.filter(pk__in=moved, state=source).update(state=target, updated_at=now)
    return moved
