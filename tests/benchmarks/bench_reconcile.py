"""Reconciliation of the city's open month, through ``usage.services.reconcile`` and as set-based SQL.

Both runs start from the same state: each runs in a transaction that is rolled back at the end,
so the month stays unreconciled for the other run (and for the next ``make bench --reuse``), and
the tables it wrote are vacuumed before each run (a rolled-back run leaves its rows dead in them).
The raw limit does the same writes in one statement each: close stale sessions and flag them,
match sessions to bookings, move bookings to completed / no-show, audit events chained per
booking (SHA-256 in the database), credit penalties, review flags, billable items (upsert) and
service records.
"""

from __future__ import annotations

import datetime as dt
import time

from .harness import Context, Result

FIGURE = "reconciliation, one month"

RAW_STATEMENTS = [
    # 1. sessions left open by a crashed logger
    """WITH closed AS (
        UPDATE usage_usagesession SET "end" = start + %(limit)s, auto_closed = true, updated_at = %(now)s
        WHERE "end" IS NULL AND start < %(now)s::timestamptz - %(limit)s RETURNING id, instrument_id)
    INSERT INTO usage_reviewflag (instrument_id, session_id, kind, detail, state, reason, created_at)
    SELECT instrument_id, id, 'open_session', 'closed after 12 h', 'open', '', %(now)s FROM closed
    ON CONFLICT DO NOTHING""",
    # 2. match ended sessions to the earliest overlapping booking (of their user, when known), found
    #    through the exclusion constraint's GiST index
    """UPDATE usage_usagesession s SET booking_id = (
        SELECT b.id FROM bookings_booking b
        WHERE b.instrument_id = s.instrument_id AND b.state IN ('confirmed', 'completed', 'no_show')
          AND tstzrange(b.start, b.blocked_until, '[)') && tstzrange(s.start, s."end", '[)')
          AND b.start < s."end" AND b."end" > s.start AND (s.user_id IS NULL OR b.user_id = s.user_id)
        ORDER BY b.start, b.id LIMIT 1)
    WHERE s.booking_id IS NULL AND s.start IS NOT NULL AND s."end" IS NOT NULL
      AND s.start >= %(since)s::timestamptz - interval '1 day' AND s.start < %(until)s""",
    # 3. settle: completed when used, no-show after the grace period; remember which moved
    """CREATE TEMP TABLE moved ON COMMIT DROP AS
    WITH settled AS (
        UPDATE bookings_booking b SET state = CASE WHEN EXISTS (
                SELECT 1 FROM usage_usagesession u WHERE u.booking_id = b.id) THEN 'completed' ELSE 'no_show' END,
            updated_at = %(now)s
        FROM catalog_bookingpolicy p
        WHERE p.instrument_id = b.instrument_id AND b.start >= %(since)s AND b.start < %(until)s
          AND b.state = 'confirmed' AND b."end" <= %(now)s
          AND (EXISTS (SELECT 1 FROM usage_usagesession u WHERE u.booking_id = b.id)
               OR %(now)s >= b.start + p.no_show_grace_minutes * interval '1 minute')
        RETURNING b.id, b.user_id, b.instrument_id, b.state)
    SELECT * FROM settled""",
    # 4. one audit event per moved booking, chained to its stream head (read, or genesis for a new
    #    stream), hashed in the database; then the heads are created or moved to the new events
    """WITH events AS (
        SELECT 'bookings.booking:' || m.id AS key, coalesce(h.last_seq, 0) + 1 AS seq,
               coalesce(h.last_hash, repeat('0', 64)) AS prev_hash, m.id AS booking_id, m.state
        FROM moved m LEFT JOIN audit_auditstream h ON h.key = 'bookings.booking:' || m.id),
    hashed AS (
        SELECT e.*, encode(sha256(convert_to(json_build_object('stream_key', e.key, 'seq', e.seq,
                   'action', 'booking.' || e.state, 'after', json_build_object('state', e.state),
                   'occurred_at', %(now)s::timestamptz, 'prev_hash', e.prev_hash)::text, 'UTF8')), 'hex') AS hash
        FROM events e),
    written AS (
        INSERT INTO audit_auditevent (stream_key, seq, occurred_at, actor_repr, request_id, action, target_type,
            target_id, target_repr, before, after, reason, prev_hash, hash)
        SELECT key, seq, %(now)s, 'system', '', 'booking.' || state, 'bookings.booking', booking_id::text, '',
               '{"state": "confirmed"}'::jsonb, json_build_object('state', state)::jsonb, '', prev_hash, hash
        FROM hashed RETURNING stream_key, seq, hash)
    INSERT INTO audit_auditstream (key, last_seq, last_hash) SELECT stream_key, seq, hash FROM written
    ON CONFLICT (key) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash""",
    # 5. credit penalties for no-shows
    """INSERT INTO bookings_creditevent (user_id, booking_id, kind, delta, created_at)
    SELECT user_id, id, 'no_show', -%(penalty)s, %(now)s FROM moved WHERE state = 'no_show' ON CONFLICT DO NOTHING""",
    """INSERT INTO bookings_usercredit (user_id, score, updated_at)
    SELECT user_id, %(initial)s - %(penalty)s * count(*), %(now)s FROM moved WHERE state = 'no_show' GROUP BY user_id
    ON CONFLICT (user_id) DO UPDATE SET score = bookings_usercredit.score - (%(initial)s - EXCLUDED.score),
        updated_at = EXCLUDED.updated_at""",
    # 6. review flags: no-shows, overruns, early finishes, unbooked use
    """INSERT INTO usage_reviewflag (instrument_id, booking_id, session_id, kind, detail, state, reason, created_at)
    SELECT b.instrument_id, b.id, NULL, CASE WHEN b.state = 'no_show' THEN 'no_show'
               WHEN u.last > b."end" + %(tolerance)s THEN 'overrun' ELSE 'early_finish' END, '', 'open', '', %(now)s
    FROM bookings_booking b LEFT JOIN (
        SELECT booking_id, max("end") AS last FROM usage_usagesession WHERE booking_id IS NOT NULL
        GROUP BY booking_id) u ON u.booking_id = b.id
    WHERE b.start >= %(since)s AND b.start < %(until)s AND (b.state = 'no_show' OR (b.state = 'completed' AND (
        u.last > b."end" + %(tolerance)s OR u.last < b."end" - %(tolerance)s)))
    UNION ALL
    SELECT instrument_id, NULL, id, 'unbooked', 'usage without a booking', 'open', '', %(now)s
    FROM usage_usagesession WHERE booking_id IS NULL AND "end" IS NOT NULL AND start >= %(since)s
      AND start < %(until)s
    ON CONFLICT DO NOTHING""",
    # 7. billable items, one per settled booking, upserted (charge modes, minimum and rounding in SQL)
    """INSERT INTO usage_billableitem (booking_id, instrument_id, user_id, lab_id, is_internal, kind, charge_mode,
        unit, quantity, booked_minutes, used_minutes, samples, service_start, service_end, state, corrected, note,
        created_at, updated_at)
    SELECT b.id, b.instrument_id, b.user_id, b.charged_lab_id, b.is_internal, q.kind, p.charge_mode,
        CASE WHEN p.charge_mode = 'per_sample' AND q.kind = 'booking' THEN 'sample'
             WHEN p.charge_mode IN ('per_sample', 'per_use') THEN 'use' ELSE 'hour' END,
        CASE WHEN p.charge_mode = 'per_sample' AND q.kind = 'booking' THEN q.samples
             WHEN p.charge_mode IN ('per_sample', 'per_use') THEN 1
             WHEN q.minutes <= 0 THEN 0
             ELSE ceil(greatest(q.minutes, p.min_charge_minutes)::numeric / p.rounding_minutes) * p.rounding_minutes
        END, q.booked, q.used, q.samples, b.start, b."end", 'open', false, '', %(now)s, %(now)s
    FROM bookings_booking b JOIN catalog_bookingpolicy p ON p.instrument_id = b.instrument_id
    LEFT JOIN (SELECT booking_id, sum(extract(epoch FROM "end" - start)::int / 60) AS used, sum(samples) AS samples
               FROM usage_usagesession WHERE booking_id IS NOT NULL AND "end" IS NOT NULL GROUP BY booking_id) u
           ON u.booking_id = b.id
    CROSS JOIN LATERAL (SELECT
        CASE b.state WHEN 'completed' THEN 'booking' WHEN 'no_show' THEN 'no_show' ELSE 'late_cancel' END AS kind,
        extract(epoch FROM b."end" - b.start)::int / 60 AS booked, coalesce(u.used, 0) AS used,
        coalesce(u.samples, 0) AS samples,
        CASE WHEN b.state = 'no_show'
                  THEN extract(epoch FROM b."end" - b.start)::int / 60 * p.no_show_charge_percent / 100
             WHEN b.state = 'cancelled' THEN extract(epoch FROM b."end" - b.start)::int / 60
                                             * p.late_cancel_charge_percent / 100
             WHEN p.charge_mode = 'used' THEN coalesce(u.used, 0)
             WHEN p.charge_mode = 'longer'
                  THEN greatest(coalesce(u.used, 0), extract(epoch FROM b."end" - b.start)::int / 60)
             ELSE extract(epoch FROM b."end" - b.start)::int / 60 END AS minutes) q
    WHERE b.start >= %(since)s AND b.start < %(until)s
      AND (b.state IN ('completed', 'no_show') OR (b.state = 'cancelled' AND b.late_cancellation))
    ON CONFLICT (booking_id) DO UPDATE SET quantity = EXCLUDED.quantity, used_minutes = EXCLUDED.used_minutes,
        samples = EXCLUDED.samples, updated_at = EXCLUDED.updated_at
    WHERE usage_billableitem.state = 'open' AND NOT usage_billableitem.corrected""",
    # ... and one per unbooked session
    """INSERT INTO usage_billableitem (session_id, instrument_id, user_id, lab_id, is_internal, kind, charge_mode,
        unit, quantity, booked_minutes, used_minutes, samples, service_start, service_end, state, corrected, note,
        created_at, updated_at)
    SELECT s.id, s.instrument_id, s.user_id, NULL, coalesce(us.organization_id = i.organization_id, true), 'unbooked',
        p.charge_mode, 'hour', ceil(greatest(extract(epoch FROM s."end" - s.start)::int / 60, p.min_charge_minutes)
        ::numeric / p.rounding_minutes) * p.rounding_minutes, 0, extract(epoch FROM s."end" - s.start)::int / 60,
        s.samples, s.start, s."end", 'open', false, '', %(now)s, %(now)s
    FROM usage_usagesession s JOIN catalog_instrument i ON i.id = s.instrument_id
    JOIN catalog_bookingpolicy p ON p.instrument_id = s.instrument_id LEFT JOIN accounts_user us ON us.id = s.user_id
    WHERE s.booking_id IS NULL AND s."end" IS NOT NULL AND s.start >= %(since)s AND s.start < %(until)s
    ON CONFLICT (session_id) DO NOTHING""",
    # 8. service records for the used ones
    """INSERT INTO usage_servicerecord (item_id, instrument_id, user_id, applicant_organization_id, way, is_internal,
        direction, project, funding_programme, start, "end", hours, samples, created_at)
    SELECT it.id, it.instrument_id, it.user_id, us.organization_id, 'use', it.is_internal, 'research', '', '',
        it.service_start, it.service_end, round(greatest(it.used_minutes, it.booked_minutes)::numeric / 60, 2),
        it.samples, %(now)s
    FROM usage_billableitem it LEFT JOIN accounts_user us ON us.id = it.user_id
    WHERE it.kind IN ('booking', 'unbooked') AND it.service_start >= %(since)s AND it.service_start < %(until)s
      AND NOT EXISTS (SELECT 1 FROM usage_servicerecord r WHERE r.item_id = it.id)
    ON CONFLICT (item_id) DO NOTHING""",
]


def _month(ctx: Context) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    until = ctx.anchor
    return until - dt.timedelta(days=30), until, until + dt.timedelta(hours=1)


def _ours(since, until, now) -> tuple[float, dict, dict]:
    import dataclasses

    from django.db import connection, transaction

    from usage.services.reconcile import reconcile

    statements: dict[str, list] = {}

    def timed(execute, sql, params, many, context):
        # Where the run's time goes, by statement (its first words): a few hundred statements, so the
        # wrapper's microseconds do not count.
        begun = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = statements.setdefault(" ".join(sql.split())[:90], [0, 0.0])
            shape[0] += 1
            shape[1] += time.perf_counter() - begun

    with transaction.atomic(), connection.execute_wrapper(timed):
        cpu, started = time.process_time(), time.perf_counter()
        summary = reconcile(since=since, until=until, now=now)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        transaction.set_rollback(True)  # leave the month unreconciled for the raw run and the next run
    top = sorted(statements.items(), key=lambda item: -item[1][1])[:12]
    return seconds, dataclasses.asdict(summary), {
        "python_cpu_seconds": round(cpu, 2), "statements": sum(count for count, _s in statements.values()),
        "statement_seconds": round(sum(s for _c, s in statements.values()), 2),
        "slowest_statements": [[shape, count, round(s, 2)] for shape, (count, s) in top]}


def _raw(ctx: Context, since, until, now) -> tuple[float, list[tuple[int, float]]]:
    """Seconds for all the statements, and (rows, seconds) for each."""
    from django.conf import settings

    params = {"since": since, "until": until, "now": now, "limit": dt.timedelta(hours=12), "penalty": 10,
              "initial": settings.CREDIT_INITIAL_SCORE, "tolerance": dt.timedelta(minutes=15)}
    each = []
    with ctx.raw_connection() as conn:
        started = time.perf_counter()
        for statement in RAW_STATEMENTS:
            begun = time.perf_counter()
            rows = conn.execute(statement, params).rowcount
            each.append((rows, round(time.perf_counter() - begun, 2)))
        seconds = time.perf_counter() - started
        conn.rollback()
    return seconds, each


# What a run writes (and its rollback leaves as dead rows for the next run to step over).
WRITTEN_TABLES = ("usage_usagesession", "bookings_booking", "audit_auditevent", "audit_auditstream",
                  "usage_billableitem", "usage_servicerecord", "usage_reviewflag", "bookings_creditevent",
                  "bookings_usercredit")


def _vacuum(ctx: Context) -> None:
    """The written tables vacuumed and analysed: each timed run starts from the same clean state, not
    from the dead rows of the run before it (which slowed whichever ran second)."""
    with ctx.raw_connection(autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(WRITTEN_TABLES)}")


def run(ctx: Context) -> list[Result]:
    import statistics

    from usage.models import UsageSession

    since, until, now = _month(ctx)
    sessions = UsageSession.objects.filter(start__gte=since, start__lt=until).count()
    # Several rounds at the smaller scales, ours and raw in alternating order (ABBA…), the medians
    # reported: one pair on this shared machine moves by ±30 %.
    rounds = ctx.size(smoke=1, quick=4, full=2) if ctx.postgres else 1
    ours_seconds, raw_seconds, each, summary, profile = [], [], [], {}, {}
    for round_ in range(rounds):
        for which in (("ours", "raw") if round_ % 2 == 0 else ("raw", "ours")):
            if ctx.postgres:
                _vacuum(ctx)
            if which == "ours":
                seconds, summary, profile = _ours(since, until, now)
                ours_seconds.append(seconds)
            elif ctx.postgres:
                seconds, each = _raw(ctx, since, until, now)
                raw_seconds.append(seconds)
    seconds = statistics.median(ours_seconds)
    target_sessions = 500_000
    result = Result(FIGURE, seconds, "s", target="≤ 60 s; ≤ 3× raw (≥ 500,000 sessions)", better="lower",
                    details={"sessions_in_month": sessions, "summary": summary, "window": [since, until],
                             "rounds": rounds, "ours_seconds": [round(value, 3) for value in ours_seconds],
                             "ours_last_run": profile})
    if ctx.postgres:
        result.raw = statistics.median(raw_seconds)
        result.details["raw_seconds"] = [round(value, 3) for value in raw_seconds]
        result.details["raw_rows_and_seconds_per_statement"] = each
        result.met = seconds <= 60 and seconds <= 3 * result.raw
    else:
        result.met = seconds <= 60
        result.note = "raw limit skipped: set-based SQL written for PostgreSQL"
    if sessions < target_sessions:
        result.details["scale_note"] = f"{sessions:,} sessions: below the target's {target_sessions:,} (smaller city)"
    return [result]
