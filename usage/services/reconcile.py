"""Reconciliation: bookings against real usage, in sets, idempotently.

One run over a window:
1. close sessions left open by a crashed logger (one UPDATE) and flag them;
2. match ended, unmatched sessions to bookings (one correlated UPDATE per user case);
3. move ended bookings to completed (had use) or no-show (none, after the grace period), with
   audit events and credit penalties written in bulk;
4. flag overruns, early finishes and unbooked use;
5. upsert one billable item per booking or unbooked session, and its service record.
Every write is keyed (state filters, unique keys), so a second run, or a run after a worker
was killed half-way, leaves exactly what one run leaves. Work is done in chunks of bookings,
each in its own transaction, with a fixed number of statements per chunk.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.db.models.lookups import IsNull
from django.utils import timezone

from bookings import services as booking_services
from bookings.availability import span
from bookings.models import Booking
from catalog.models import BookingPolicy, Instrument
from instrumentshare.core.bulk import among, insert_rows, insert_select, pg_array
from instrumentshare.core.heap import job_heap

from ..charging import billable_quantity
from ..models import BillableItem, ReviewFlag, ServiceRecord, UsageSession

logger = logging.getLogger(__name__)
CHUNK = int(os.environ.get("RECONCILE_CHUNK", "5000"))
LOCK_ID = 0x5EC0C11E


@dataclass
class Summary:
    closed_sessions: int = 0
    matched_sessions: int = 0
    completed: int = 0
    no_shows: int = 0
    flags: int = 0
    items_created: int = 0
    items_updated: int = 0
    skipped: bool = False
    details: dict = field(default_factory=dict)


def _duration(start: str, end: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _minutes(value) -> int:
    if value is None:
        return 0
    if isinstance(value, dt.timedelta):
        return max(int(value.total_seconds() // 60), 0)
    return max(int(value) // 60_000_000, 0)  # microseconds, as some backends return durations


class _RunLock:
    """One reconciliation at a time on PostgreSQL (two beats started by mistake): the second skips."""

    def __enter__(self) -> bool:
        self.held = True
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_ID])
                self.held = cursor.fetchone()[0]
        return self.held

    def __exit__(self, *exc) -> None:
        if self.held and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])


def reconcile(*, since: dt.datetime, until: dt.datetime | None = None, now: dt.datetime | None = None) -> Summary:
    now = now or timezone.now()
    until = min(until or now, now)
    summary = Summary()
    with job_heap(), _RunLock() as held:
        if not held:
            summary.skipped = True
            return summary
        flags_before = ReviewFlag.objects.count()
        summary.closed_sessions = close_open_sessions(now=now)
        flag_stops_without_start(now=now)
        summary.matched_sessions = match_sessions(since=since, until=until)
        settle_bookings(since=since, until=until, now=now, summary=summary)
        summary.flags += flag_sessions(since=since, until=until)
        upsert_unbooked_items(since=since, until=until, summary=summary)
        summary.flags = ReviewFlag.objects.count() - flags_before
    logger.info("reconciliation %s..%s: %s", since, until, summary)
    return summary


def close_open_sessions(*, now: dt.datetime) -> int:
    limit = dt.timedelta(hours=settings.USAGE_OPEN_SESSION_LIMIT_HOURS)
    with transaction.atomic():
        stale = UsageSession.objects.select_for_update().filter(end__isnull=True, start__lt=now - limit)
        ids = list(stale.values_list("id", flat=True))
        if not ids:
            return 0
        UsageSession.objects.filter(pk__in=ids).update(end=F("start") + limit, auto_closed=True, updated_at=now)
        rows = UsageSession.objects.filter(pk__in=ids).values_list("id", "instrument_id")
        ReviewFlag.objects.bulk_create(
            [ReviewFlag(instrument_id=instrument_id, session_id=session_id, kind=ReviewFlag.Kind.OPEN_SESSION,
                        detail=f"closed after {settings.USAGE_OPEN_SESSION_LIMIT_HOURS} h")
             for session_id, instrument_id in rows],
            ignore_conflicts=True,
        )
    return len(ids)


def flag_stops_without_start(*, now: dt.datetime) -> int:
    """A logger reported a stop whose start never came: neither billable nor to be ignored. Once the
    start has had as long to arrive as an open session has to close, the session is flagged for
    review (once: the flag's unique key)."""
    limit = dt.timedelta(hours=settings.USAGE_OPEN_SESSION_LIMIT_HOURS)
    rows = UsageSession.objects.filter(start__isnull=True, end__isnull=False, end__lt=now - limit) \
        .values_list("id", "instrument_id")
    created = ReviewFlag.objects.bulk_create(
        [ReviewFlag(instrument_id=instrument_id, session_id=session_id, kind=ReviewFlag.Kind.STOP_WITHOUT_START,
                    detail="a stop event without a start") for session_id, instrument_id in rows],
        ignore_conflicts=True,
    )
    return len(created)


MATCHABLE = (Booking.State.CONFIRMED, Booking.State.COMPLETED, Booking.State.NO_SHOW)


def match_sessions(*, since: dt.datetime, until: dt.datetime) -> int:
    """Give each ended session without a booking the earliest overlapping booking (of its user, if known)."""
    unmatched = UsageSession.objects.filter(booking__isnull=True, start__isnull=False, end__isnull=False,
                                            start__gte=since - dt.timedelta(days=1), start__lt=until)
    overlapping = Booking.objects.filter(instrument_id=OuterRef("instrument_id"), state__in=MATCHABLE,
                                         start__lt=OuterRef("end"), end__gt=OuterRef("start")).order_by("start", "id")
    if connection.vendor == "postgresql":
        # The same rows, found through the exclusion constraint's GiST index (instrument, [start,
        # blocked_until)) instead of walking the instrument's whole history in start order.
        overlapping = overlapping.alias(span=span("start", "blocked_until")).filter(
            span__overlap=span(OuterRef("start"), OuterRef("end")))
    # One pass over the month's sessions: a session of a known user takes one of that user's bookings,
    # a session of an unknown user any booking.
    mine = Q(IsNull(OuterRef("user_id"), True)) | Q(user_id=OuterRef("user_id"))
    with transaction.atomic():
        return unmatched.update(booking=Subquery(overlapping.filter(mine).values("pk")[:1]))


def _ended_bookings(since, until):
    return Booking.objects.filter(start__gte=since, start__lt=until)


def settle_bookings(*, since, until, now, summary: Summary) -> None:
    ids = list(_ended_bookings(since, until).filter(
        Q(state__in=(Booking.State.CONFIRMED, Booking.State.COMPLETED, Booking.State.NO_SHOW))
        | Q(state=Booking.State.CANCELLED, late_cancellation=True)
    ).order_by("id").values_list("id", flat=True))
    for offset in range(0, len(ids), CHUNK):
        with transaction.atomic():
            _settle_chunk(ids[offset: offset + CHUNK], now=now, summary=summary)


CHUNK_COLUMNS = ("id", "state", "late_cancellation", "start", "end", "charged_lab_id", "is_internal", "user_id",
                 "instrument_id", "has_use", "instrument__policy__no_show_grace_minutes",
                 "instrument__policy__charge_mode", "instrument__policy__min_charge_minutes",
                 "instrument__policy__rounding_minutes", "instrument__policy__no_show_charge_percent",
                 "instrument__policy__late_cancel_charge_percent")


class _Row:
    """One booking of a chunk as read (and locked) once, with the state this run leaves it in."""

    __slots__ = CHUNK_COLUMNS[:10] + ("grace", "charge_mode", "min_minutes", "rounding", "no_show_percent",
                                      "late_cancel_percent")

    def __init__(self, values: tuple) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)


def _as_read(query) -> list[tuple]:
    """PostgreSQL: the rows of a ``values_list`` query of plain columns (ids) as psycopg reads them,
    without Django's converter call per value (10^3–10^4 a chunk)."""
    with connection.cursor() as cursor:
        cursor.execute(*query.query.sql_with_params())
        return cursor.fetchall()


def _settle_chunk(ids: list[int], *, now, summary: Summary) -> None:
    if connection.vendor == "postgresql":
        # Bookings decide and move the chunk in one statement from what usage tells them (which
        # bookings had use); the flags, items and records are then made by the database from the
        # rows as moved: nothing about the chunk's 10^3–10^4 bookings travels through Python.
        used = [pk for (pk,) in _as_read(UsageSession.objects.filter(booking_id__in=among(ids))
                                         .order_by().values_list("booking_id").distinct())]
        completed, no_shows = booking_services.settle_ended(ids, used=used, now=now)
        summary.completed += completed
        summary.no_shows += no_shows
        summary.flags += _flag_bookings_sql(ids)
        _upsert_booking_items_sql(ids, now=now, summary=summary)
        return
    # One read of the chunk, locking its rows: what this run moves, flags and bills is what it
    # read, and a booking someone else moved meanwhile (a late cancel, say) is seen as moved.
    rows = [_Row(values) for values in (
        Booking.objects.filter(pk__in=ids).select_for_update(of=("self",))
        .annotate(has_use=Exists(UsageSession.objects.filter(booking_id=OuterRef("pk"))))
        .values_list(*CHUNK_COLUMNS))]
    completed_ids, no_shows = [], []
    for row in rows:
        if row.state != Booking.State.CONFIRMED or row.end > now:
            continue
        if row.has_use:
            row.state = Booking.State.COMPLETED.value
            completed_ids.append(row.id)
        elif now >= row.start + dt.timedelta(minutes=row.grace):
            row.state = Booking.State.NO_SHOW.value
            no_shows.append((row.id, row.user_id))
    booking_services.settle(completed=completed_ids, no_shows=no_shows, now=now)
    summary.completed += len(completed_ids)
    summary.no_shows += len(no_shows)
    usage = _usage_by_booking(ids)  # read once for the flags and the items
    summary.flags += _flag_bookings(rows, usage)
    _upsert_booking_items(rows, usage, now=now, summary=summary)


def _usage_by_booking(ids: list[int]) -> dict[int, tuple[int, int, dt.datetime | None, dt.datetime | None]]:
    rows = (UsageSession.objects.filter(booking_id__in=ids, start__isnull=False, end__isnull=False)
            .values("booking_id").annotate(used=Sum(_duration("start", "end")), samples=Sum("samples"),
                                           first=Min("start"), last=Max("end")))
    return {row["booking_id"]: (_minutes(row["used"]), row["samples"] or 0, row["first"], row["last"])
            for row in rows}


def _flag_bookings(rows: list[_Row], usage: dict) -> int:
    tolerance = dt.timedelta(minutes=settings.USAGE_FLAG_TOLERANCE_MINUTES)
    flags = []  # plain rows (instrument, booking, kind, detail): a city's month has 10^5 of them
    for row in rows:
        if row.state == Booking.State.NO_SHOW:
            flags.append((row.instrument_id, row.id, ReviewFlag.Kind.NO_SHOW.value, "no usage recorded"))
            continue
        if row.id not in usage or row.state != Booking.State.COMPLETED:
            continue
        _used, _samples, _first, last = usage[row.id]
        if last and last > row.end + tolerance:
            flags.append((row.instrument_id, row.id, ReviewFlag.Kind.OVERRUN.value,
                          f"used until {last:%H:%M} UTC, booked until {row.end:%H:%M} UTC"))
        elif last and last < row.end - tolerance:
            flags.append((row.instrument_id, row.id, ReviewFlag.Kind.EARLY_FINISH.value,
                          f"finished {last:%H:%M} UTC, booked until {row.end:%H:%M} UTC"))
    insert_rows(ReviewFlag, ["instrument_id", "booking_id", "kind", "detail"], flags, ignore_conflicts=True)
    return len(flags)


def _tables() -> dict[str, str]:
    from django.contrib.auth import get_user_model

    quote = connection.ops.quote_name
    return {name: quote(model._meta.db_table) for name, model in (
        ("booking", Booking), ("session", UsageSession), ("policy", BookingPolicy), ("item", BillableItem),
        ("user", get_user_model()))}


def _flag_bookings_sql(ids: list[int]) -> int:
    """``_flag_bookings`` in one statement: no-shows, and completed bookings used past or short of their end."""
    t = _tables()
    select = f"""
        SELECT b.instrument_id, b.id,
               CASE WHEN b.state = 'no_show' THEN 'no_show' WHEN u.last > b."end" + %(tolerance)s THEN 'overrun'
                    ELSE 'early_finish' END,
               CASE WHEN b.state = 'no_show' THEN 'no usage recorded'
                    WHEN u.last > b."end" + %(tolerance)s
                    THEN 'used until ' || to_char(u.last AT TIME ZONE 'UTC', 'HH24:MI') || ' UTC, booked until '
                         || to_char(b."end" AT TIME ZONE 'UTC', 'HH24:MI') || ' UTC'
                    ELSE 'finished ' || to_char(u.last AT TIME ZONE 'UTC', 'HH24:MI') || ' UTC, booked until '
                         || to_char(b."end" AT TIME ZONE 'UTC', 'HH24:MI') || ' UTC' END
        FROM {t["booking"]} b
        LEFT JOIN (SELECT booking_id, max("end") AS last FROM {t["session"]}
                   WHERE booking_id = ANY(%(ids)s::bigint[]) AND start IS NOT NULL AND "end" IS NOT NULL
                   GROUP BY booking_id) u ON u.booking_id = b.id
        WHERE b.id = ANY(%(ids)s::bigint[]) AND (b.state = 'no_show' OR (b.state = 'completed'
              AND (u.last > b."end" + %(tolerance)s OR u.last < b."end" - %(tolerance)s)))"""  # noqa: S608
    tolerance = dt.timedelta(minutes=settings.USAGE_FLAG_TOLERANCE_MINUTES)
    rows = insert_select(ReviewFlag, ("instrument_id", "booking_id", "kind", "detail"), select,
                          {"ids": pg_array(ids), "tolerance": tolerance}, suffix="ON CONFLICT DO NOTHING RETURNING 1")
    return len(rows)


def flag_sessions(*, since, until) -> int:
    rows = UsageSession.objects.filter(booking__isnull=True, end__isnull=False, start__gte=since,
                                       start__lt=until).values_list("id", "instrument_id")
    flags = [(instrument_id, session_id, ReviewFlag.Kind.UNBOOKED.value, "usage without a booking")
             for session_id, instrument_id in rows]
    insert_rows(ReviewFlag, ["instrument_id", "session_id", "kind", "detail"], flags, ignore_conflicts=True)
    return len(flags)


ITEM_FIELDS = ("kind", "charge_mode", "unit", "quantity", "booked_minutes", "used_minutes", "samples",
               "service_start", "service_end", "lab_id", "is_internal", "user_id", "instrument_id")
ITEM_COLUMNS = tuple(f'"{BillableItem._meta.get_field(name.removesuffix("_id")).column}"' for name in ITEM_FIELDS)


def _policy_rules(policy: BookingPolicy) -> dict:
    return {"charge_mode": policy.charge_mode, "min_charge_minutes": policy.min_charge_minutes,
            "rounding_minutes": policy.rounding_minutes, "no_show_percent": policy.no_show_charge_percent,
            "late_cancel_percent": policy.late_cancel_charge_percent}


ITEM_KINDS = {"completed": "booking", "no_show": "no_show", "cancelled": "late_cancel"}  # by state value


def _item_kind(row: _Row) -> str | None:
    """The billable item a settled booking gets, if any (a cancellation only when it was late)."""
    kind = ITEM_KINDS.get(row.state)
    return None if kind == "late_cancel" and not row.late_cancellation else kind


def _upsert_booking_items(rows: list[_Row], usage: dict, *, now, summary: Summary) -> None:
    # Plain values, not model instances: this runs for every booking of a city's month.
    wanted = {}
    for row in rows:
        kind = _item_kind(row)
        if kind is None:
            continue
        used, samples, _first, _last = usage.get(row.id, (0, 0, None, None))
        booked = int((row.end - row.start).total_seconds() // 60)
        quantity = billable_quantity(kind=kind, booked_minutes=booked, used_minutes=used, samples=samples,
                                     charge_mode=row.charge_mode, min_charge_minutes=row.min_minutes,
                                     rounding_minutes=row.rounding, no_show_percent=row.no_show_percent,
                                     late_cancel_percent=row.late_cancel_percent)
        wanted[row.id] = {
            "kind": kind, "charge_mode": row.charge_mode, "unit": quantity.unit,
            "quantity": quantity.quantity, "booked_minutes": booked, "used_minutes": used, "samples": samples,
            "service_start": row.start, "service_end": row.end, "lab_id": row.charged_lab_id,
            "is_internal": row.is_internal, "user_id": row.user_id, "instrument_id": row.instrument_id,
        }
    _apply_items("booking_id", wanted, now=now, summary=summary)


def _upsert_booking_items_sql(ids: list[int], *, now, summary: Summary) -> None:
    """``_upsert_booking_items`` in one statement per chunk, for these billable bookings.

    The quantities follow ``usage.charging.billable_quantity`` case by case (a test runs both
    over every charge mode, kind and rounding); the upsert follows ``_apply_items``: create what
    is missing, update open, uncorrected items that differ, leave the rest alone.
    """
    if not ids:
        return
    t = _tables()
    select = f"""
        SELECT s.booking_id, s.kind, s.charge_mode,
               CASE WHEN s.kind <> 'booking' AND s.charge_mode IN ('per_sample', 'per_use') THEN 'use'
                    WHEN s.kind <> 'booking' THEN 'hour'
                    WHEN s.charge_mode = 'per_sample' THEN 'sample'
                    WHEN s.charge_mode = 'per_use' THEN 'use' ELSE 'hour' END,
               CASE WHEN s.kind <> 'booking' AND s.charge_mode IN ('per_sample', 'per_use')
                         THEN CASE WHEN s.percent > 0 THEN 1 ELSE 0 END
                    WHEN s.kind <> 'booking' AND s.percent = 0 THEN 0
                    WHEN s.charge_mode = 'per_sample' THEN s.samples
                    WHEN s.charge_mode = 'per_use' THEN 1
                    WHEN m.minutes <= 0 THEN 0
                    ELSE ceil(greatest(m.minutes, s.min_charge_minutes)::numeric / s.rounding)::int * s.rounding
               END,
               s.booked, s.used, s.samples, s.start, s."end", s.lab_id, s.is_internal, s.user_id, s.instrument_id,
               %(now)s::timestamptz, %(now)s::timestamptz
        FROM (SELECT b.id AS booking_id, b.instrument_id, b.user_id, b.charged_lab_id AS lab_id, b.is_internal,
                     b.start, b."end", p.charge_mode, p.min_charge_minutes,
                     greatest(p.rounding_minutes, 1) AS rounding,
                     CASE b.state WHEN 'completed' THEN 'booking' WHEN 'no_show' THEN 'no_show'
                                  ELSE 'late_cancel' END AS kind,
                     CASE b.state WHEN 'no_show' THEN p.no_show_charge_percent
                                  ELSE p.late_cancel_charge_percent END AS percent,
                     floor(extract(epoch FROM b."end" - b.start) / 60)::int AS booked,
                     coalesce(u.used, 0) AS used, coalesce(u.samples, 0) AS samples
              FROM {t["booking"]} b JOIN {t["policy"]} p ON p.instrument_id = b.instrument_id
              LEFT JOIN (SELECT booking_id, greatest(floor(extract(epoch FROM sum("end" - start)) / 60), 0)::int
                                AS used, coalesce(sum(samples), 0)::int AS samples
                         FROM {t["session"]}
                         WHERE booking_id = ANY(%(ids)s::bigint[]) AND start IS NOT NULL AND "end" IS NOT NULL
                         GROUP BY booking_id) u ON u.booking_id = b.id
              WHERE b.id = ANY(%(ids)s::bigint[]) AND (b.state IN ('completed', 'no_show')
                    OR (b.state = 'cancelled' AND b.late_cancellation))) s
        CROSS JOIN LATERAL (SELECT CASE WHEN s.kind <> 'booking' THEN s.booked * s.percent / 100
                                        WHEN s.charge_mode = 'booked' THEN s.booked
                                        WHEN s.charge_mode = 'used' THEN s.used
                                        ELSE greatest(s.booked, s.used) END AS minutes) m"""  # noqa: S608
    _upsert_items_sql("booking_id", select, ids, now=now, summary=summary)


def _upsert_items_sql(key: str, select: str, ids: list[int], *, now, summary: Summary) -> None:
    """The items ``select`` yields (``key``, then ``ITEM_FIELDS``, for these source ids) upserted as
    ``_apply_items`` does: create what is missing, update open, uncorrected items that differ, leave
    the rest alone; then the service records of these sources."""
    changed = ", ".join(f"existing.{name}" for name in ITEM_COLUMNS)
    incoming = ", ".join(f"EXCLUDED.{name}" for name in ITEM_COLUMNS)
    update = ", ".join(f"{name} = EXCLUDED.{name}" for name in (*ITEM_COLUMNS, "updated_at"))
    column = connection.ops.quote_name(BillableItem._meta.get_field(key.removesuffix("_id")).column)
    rows = insert_select(
        BillableItem, (key, *ITEM_FIELDS, "created_at", "updated_at"), select,
        {"ids": pg_array(ids), "now": now},
        suffix=f"ON CONFLICT ({column}) DO UPDATE SET {update} WHERE existing.state = 'open' AND NOT "
               f"existing.corrected AND ({changed}) IS DISTINCT FROM ({incoming}) RETURNING (existing.xmax = 0)")
    created = sum(1 for (inserted,) in rows if inserted)
    summary.items_created += created
    summary.items_updated += len(rows) - created
    _ensure_service_records_sql(ids, key)


def upsert_unbooked_items(*, since, until, summary: Summary) -> None:
    """One billable item (and service record) per ended session that has no booking."""
    if connection.vendor == "postgresql":
        _upsert_unbooked_items_sql(since=since, until=until, summary=summary)
        return
    _upsert_unbooked_items(since=since, until=until, summary=summary)


def _upsert_unbooked_items_sql(*, since, until, summary: Summary) -> None:
    """``_upsert_unbooked_items`` in one statement: the same quantities (``billable_quantity`` for an
    unbooked session), lab (the user's first lab by id), internal use (no user, or the instrument's
    organization is the user's own or one of their labs'), and the same upsert rules as ``_apply_items``."""
    from instrumentshare.accounts.models import Lab, Membership

    ids = list(UsageSession.objects.filter(booking__isnull=True, end__isnull=False, start__gte=since,
                                           start__lt=until).order_by("id").values_list("id", flat=True))
    if not ids:
        return
    quote = connection.ops.quote_name
    t = _tables() | {"instrument": quote(Instrument._meta.db_table), "membership": quote(Membership._meta.db_table),
                     "lab": quote(Lab._meta.db_table)}
    select = f"""
        SELECT s.id, 'unbooked', p.charge_mode,
               CASE p.charge_mode WHEN 'per_sample' THEN 'sample' WHEN 'per_use' THEN 'use' ELSE 'hour' END,
               CASE WHEN p.charge_mode = 'per_sample' THEN s.samples
                    WHEN p.charge_mode = 'per_use' THEN CASE WHEN m.used > 0 THEN 1 ELSE 0 END
                    WHEN m.used <= 0 THEN 0
                    ELSE ceil(greatest(m.used, p.min_charge_minutes)::numeric
                              / greatest(p.rounding_minutes, 1))::int * greatest(p.rounding_minutes, 1)
               END,
               0, m.used, s.samples, s.start, s."end",
               (SELECT min(ms.lab_id) FROM {t["membership"]} ms WHERE ms.user_id = s.user_id),
               s.user_id IS NULL OR coalesce(u.organization_id = i.organization_id, false) OR EXISTS (
                   SELECT 1 FROM {t["membership"]} ms JOIN {t["lab"]} l ON l.id = ms.lab_id
                   WHERE ms.user_id = s.user_id AND l.organization_id = i.organization_id),
               s.user_id, s.instrument_id, %(now)s::timestamptz, %(now)s::timestamptz
        FROM {t["session"]} s JOIN {t["instrument"]} i ON i.id = s.instrument_id
        JOIN {t["policy"]} p ON p.instrument_id = s.instrument_id
        LEFT JOIN {t["user"]} u ON u.id = s.user_id
        CROSS JOIN LATERAL (SELECT greatest(floor(extract(epoch FROM s."end" - s.start) / 60), 0)::int AS used) m
        WHERE s.id = ANY(%(ids)s::bigint[])"""  # noqa: S608 - names from models
    with transaction.atomic():
        _upsert_items_sql("session_id", select, ids, now=timezone.now(), summary=summary)


def _upsert_unbooked_items(*, since, until, summary: Summary) -> None:
    from instrumentshare.accounts.models import Lab, User

    sessions = list(UsageSession.objects.filter(booking__isnull=True, end__isnull=False, start__gte=since,
                                                start__lt=until).select_related("instrument__policy"))
    now = timezone.now()
    labs = {}
    if sessions:
        from instrumentshare.accounts.models import Membership

        for user_id, lab_id in Membership.objects.filter(
                user_id__in={s.user_id for s in sessions if s.user_id}).order_by("lab_id").values_list(
                "user_id", "lab_id"):
            labs.setdefault(user_id, lab_id)
    # Whose organizations are whose, in two queries for all sessions (internal use is derived from them).
    user_ids = {s.user_id for s in sessions if s.user_id}
    organizations = defaultdict(set)
    for user_id, organization_id in User.objects.filter(pk__in=user_ids).values_list("id", "organization_id"):
        if organization_id:
            organizations[user_id].add(organization_id)
    for user_id, organization_id in Lab.objects.filter(memberships__user_id__in=user_ids).values_list(
            "memberships__user_id", "organization_id"):
        organizations[user_id].add(organization_id)
    wanted = {}
    for session in sessions:
        used = _minutes(session.end - session.start)
        quantity = billable_quantity(kind="unbooked", booked_minutes=0, used_minutes=used, samples=session.samples,
                                     **_policy_rules(session.instrument.policy))
        internal = session.user_id is None or session.instrument.organization_id in organizations[session.user_id]
        wanted[session.pk] = {
            "kind": "unbooked", "charge_mode": session.instrument.policy.charge_mode, "unit": quantity.unit,
            "quantity": quantity.quantity, "booked_minutes": 0, "used_minutes": used, "samples": session.samples,
            "service_start": session.start, "service_end": session.end, "lab_id": labs.get(session.user_id),
            "is_internal": internal, "user_id": session.user_id, "instrument_id": session.instrument_id,
        }
    for offset in range(0, len(sessions), CHUNK):
        keys = list(wanted)[offset: offset + CHUNK]
        with transaction.atomic():
            _apply_items("session_id", {key: wanted[key] for key in keys}, now=now, summary=summary)


def _apply_items(key: str, wanted: dict[int, dict], *, now, summary: Summary) -> None:
    """Create missing items, update open uncorrected ones that differ, leave the rest alone."""
    if not wanted:
        return
    existing = {getattr(item, key): item for item in BillableItem.objects.select_for_update().filter(
        **{f"{key}__in": list(wanted)})}
    new, changed = [], []
    for source_id, values in wanted.items():
        item = existing.get(source_id)
        if item is None:
            new.append((source_id, *(values[name] for name in ITEM_FIELDS), now, now))
        elif item.state == BillableItem.State.OPEN and not item.corrected:
            if any(getattr(item, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(item, name, value)
                item.updated_at = now
                changed.append(item)
    insert_rows(BillableItem, [key, *ITEM_FIELDS, "created_at", "updated_at"], new, ignore_conflicts=True)
    if changed:
        BillableItem.objects.bulk_update(changed, [*ITEM_FIELDS, "updated_at"], batch_size=2000)
    summary.items_created += len(new)
    summary.items_updated += len(changed)
    _ensure_service_records([source_id for source_id in wanted], key)


RECORD_COLUMNS = ("item_id", "instrument_id", "user_id", "applicant_organization_id", "is_internal", "direction",
                  "start", "end", "hours", "samples")


def _ensure_service_records(source_ids: list[int], key: str) -> None:
    """A service record for each used item (booking or unbooked) of these sources that has none."""
    if connection.vendor == "postgresql":
        _ensure_service_records_sql(source_ids, key)
        return
    items = (BillableItem.objects.filter(**{f"{key}__in": source_ids}, kind__in=("booking", "unbooked"),
                                         service_record__isnull=True)
             .values_list("id", "instrument_id", "user_id", "user__organization_id", "is_internal",
                          "booking__direction", "service_start", "service_end", "used_minutes", "booked_minutes",
                          "samples"))
    cent = Decimal("0.01")
    records = [
        (item_id, instrument_id, user_id, organization_id, internal, direction or ServiceRecord.Direction.RESEARCH,
         start, end, (Decimal(used or booked) / 60).quantize(cent), samples)
        for (item_id, instrument_id, user_id, organization_id, internal, direction, start, end, used, booked,
             samples) in items]
    insert_rows(ServiceRecord, RECORD_COLUMNS, records, ignore_conflicts=True)


def _ensure_service_records_sql(source_ids: list[int], key: str) -> None:
    """The same rows as the generic path, made by PostgreSQL in one statement (no round trip of the items).

    Hours are ``used or booked`` minutes / 60 to the cent: minutes × 50 / 3 never ends in a 5, so
    ``round`` and Decimal's half-even quantize agree.
    """
    from django.contrib.auth import get_user_model

    t = _tables()
    quote = connection.ops.quote_name
    organization = quote(get_user_model()._meta.get_field("organization").column)
    source = quote(BillableItem._meta.get_field(key.removesuffix("_id")).column)
    select = f"""
        SELECT it.id, it.instrument_id, it.user_id, u.{organization}, it.is_internal,
               COALESCE(NULLIF(b.direction, ''), %(research)s), it.service_start, it.service_end,
               ROUND(COALESCE(NULLIF(it.used_minutes, 0), it.booked_minutes)::numeric / 60, 2), it.samples
        FROM {t["item"]} it LEFT JOIN {t["user"]} u ON u.id = it.user_id
        LEFT JOIN {t["booking"]} b ON b.id = it.booking_id
        WHERE it.{source} = ANY(%(ids)s::bigint[]) AND it.kind IN ('booking', 'unbooked')"""  # noqa: S608 - names from models
    insert_select(ServiceRecord, RECORD_COLUMNS, select,
                   {"research": ServiceRecord.Direction.RESEARCH.value, "ids": pg_array(source_ids)},
                   suffix="ON CONFLICT DO NOTHING")
