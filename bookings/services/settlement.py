"""Settling ended bookings in bulk: completed (there was use) or a no-show (none after the grace period).

Usage decides which is which (it knows what happened at the instrument); bookings moves them, by the
same table as every other move (``bookings.transitions``): one UPDATE per move for a whole chunk (on
PostgreSQL one for both, deciding as it moves: ``settle_ended``), one audit record per booking, the
no-show penalty once per booking through ``credit.penalize``.
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db import connection

from catalog.models import BookingPolicy
from instrumentshare.audit.services import record_many
from instrumentshare.core.bulk import pg_array

from ..models import Booking
from ..transitions import MOVES, settled_audit
from . import credit


def settle(*, completed: list[int], no_shows: list[tuple[int, int]], now: dt.datetime, actor=None) -> int:
    """Move these bookings to completed, and these (booking id, user id) to no-show, where they are
    still confirmed; a booking already moved is left alone, so settling twice changes nothing.

    Reconciliation's generic path (SQLite) reads each chunk ``FOR UPDATE`` before deciding, so what it
    asks to move is what moves; on PostgreSQL it calls ``settle_ended``. Returns how many bookings moved.
    """
    users = dict(no_shows)
    moved = {}
    for name, ids in (("complete", completed), ("no_show", list(users))):
        if ids:
            (source,) = MOVES[name].sources
            moved[name] = _move(ids, source=source, target=MOVES[name].target, now=now)
    return _recorded(moved, users, now=now, actor=actor)


def settle_ended(ids: list[int], *, used: list[int], now: dt.datetime, actor=None) -> tuple[int, int]:
    """PostgreSQL: ``settle`` for a chunk of bookings in one statement, deciding as reconciliation does.

    Of ``ids``, those still confirmed whose end has passed move to completed if they are in ``used``
    (usage knows which had use at the instrument), else to no-show once the instrument's no-show
    grace period after their start is over. The statement locks what it moves, so nothing moved
    meanwhile by someone else (a late cancellation) is moved again. Audit records and penalties
    as ``settle``. Returns (completed, no-shows).
    """
    complete, no_show = MOVES["complete"], MOVES["no_show"]
    (source,) = complete.sources
    if no_show.sources != complete.sources:
        raise RuntimeError("settling moves both from one state")
    with connection.cursor() as cursor:
        cursor.execute(_settle_ended_sql(), {
            "ids": pg_array(ids), "used": pg_array(sorted(set(used))), "now": now, "source": source,
            "completed": complete.target, "no_show": no_show.target})
        rows = cursor.fetchall()
    moved = {"complete": sorted(pk for pk, state, _user in rows if state == complete.target),
             "no_show": sorted(pk for pk, state, _user in rows if state == no_show.target)}
    _recorded(moved, {pk: user for pk, _state, user in rows}, now=now, actor=actor)
    return len(moved["complete"]), len(moved["no_show"])


@functools.cache
def _settle_ended_sql() -> str:
    quote = connection.ops.quote_name
    booking, policy = quote(Booking._meta.db_table), quote(BookingPolicy._meta.db_table)
    return (f"UPDATE {booking} b SET state = CASE WHEN x.used THEN %(completed)s ELSE %(no_show)s END, "  # noqa: S608
            "updated_at = %(now)s "
            "FROM (SELECT c.id, u.id IS NOT NULL AS used FROM unnest(%(ids)s::bigint[]) AS c(id) "
            "      LEFT JOIN unnest(%(used)s::bigint[]) AS u(id) ON u.id = c.id) x, "
            f"     {policy} p "
            "WHERE b.id = x.id AND p.instrument_id = b.instrument_id AND b.state = %(source)s "
            "AND b.\"end\" <= %(now)s "
            "AND (x.used OR %(now)s >= b.start + p.no_show_grace_minutes * interval '1 minute') "
            "RETURNING b.id, b.state, b.user_id")


def _recorded(moved: dict[str, list[int]], users: dict[int, int], *, now: dt.datetime, actor) -> int:
    """The audit record of each moved booking (one batch per move) and the no-shows' penalties."""
    for name, ids in moved.items():
        if not ids:
            continue
        move = MOVES[name]
        (source,) = move.sources
        audit = settled_audit(move, source)  # one before/after for the chunk: written as JSON once
        record_many(actor=actor, action=move.action, now=now, entries=[
            {"target": ("bookings.booking", pk), **audit} for pk in ids])
        if move.penalty:
            credit.penalize([(pk, users[pk]) for pk in ids], kind=move.penalty, now=now, actor=actor)
    return sum(len(ids) for ids in moved.values())


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
