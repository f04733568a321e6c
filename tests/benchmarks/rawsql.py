"""Raw-limit SQL shared by the benchmarks: free time as PostgreSQL multiranges, in one statement.

Free = opening hours (weekly rules in the instrument's zone, exception days replacing them)
intersected with the bookable window (now + notice .. now + horizon, clipped to the asked range),
minus active bookings widened by the buffer before them, minus downtime. The same definition as
``bookings.availability`` except Chinese public holidays, which the database does not know.
"""

_FREE_TIME_TEMPLATE = """
WITH inst AS (
    SELECT i.id, i.time_zone AS tz, p.buffer_minutes * interval '1 minute' AS buffer,
           tstzrange(greatest(%(start)s::timestamptz,
                              %(now)s::timestamptz + p.min_notice_minutes * interval '1 minute'),
                     least(%(end)s::timestamptz, %(now)s::timestamptz + p.horizon_days * interval '1 day')) AS win
    FROM catalog_instrument i JOIN catalog_bookingpolicy p ON p.instrument_id = i.id
    WHERE __WHERE__
), usable AS (
    SELECT * FROM inst WHERE NOT isempty(win)
), days AS (
    SELECT u.id, u.tz, d::date AS day
    FROM usable u, generate_series((lower(u.win) AT TIME ZONE u.tz)::date - 1, (upper(u.win) AT TIME ZONE u.tz)::date,
                                   interval '1 day') d
), spans AS (
    SELECT days.id, __LOCAL_OPEN__ AS a, __LOCAL_CLOSE__ AS b
    FROM days CROSS JOIN LATERAL (
        SELECT r.open_minute, r.close_minute FROM catalog_openingrule r
        WHERE r.instrument_id = days.id AND r.weekday = extract(isodow FROM days.day)::int - 1
    ) r
    WHERE NOT EXISTS (SELECT 1 FROM catalog_openingexception e WHERE e.instrument_id = days.id AND e.date = days.day)
    UNION ALL
    SELECT days.id, __EXCEPTION_OPEN__, __EXCEPTION_CLOSE__
    FROM days JOIN catalog_openingexception e ON e.instrument_id = days.id AND e.date = days.day AND NOT e.closed
), opening AS (
    SELECT spans.id, range_agg(tstzrange(spans.a, spans.b)) * multirange(u.win) AS open
    FROM spans JOIN usable u ON u.id = spans.id
    GROUP BY spans.id, u.win
), busy AS (
    SELECT x.id, range_agg(x.r) AS busy FROM (
        SELECT b.instrument_id AS id, tstzrange(b.start - u.buffer, b.blocked_until) AS r
        FROM bookings_booking b JOIN usable u ON u.id = b.instrument_id
        WHERE b.state IN ('pending', 'confirmed', 'completed', 'no_show')
          AND b.start < upper(u.win) + u.buffer AND b.blocked_until > lower(u.win)
        UNION ALL
        SELECT d.instrument_id, tstzrange(d.start - u.buffer, d."end")
        FROM catalog_downtime d JOIN usable u ON u.id = d.instrument_id
        WHERE d.start < upper(u.win) AND d."end" > lower(u.win)
    ) x GROUP BY x.id
), free AS (
    SELECT opening.id, opening.open - coalesce(busy.busy, '{}'::tstzmultirange) AS free
    FROM opening LEFT JOIN busy ON busy.id = opening.id
)
"""
# A local time (a timestamp without zone) on the instrument's clock as an instant. Where the clock goes back,
# a time of the repeated hour is read as its first occurrence (the earlier offset), as Python's ``fold=0``
# reads it in ``catalog.hours``; PostgreSQL alone takes the later one. A local time the clock skips is read
# with the offset before the change by both. Clocks that change by an hour (every zone the benchmarks and
# their tests use; a 30-minute change, as on Lord Howe Island, would need the same test with 30 minutes).
_LOCAL = ("(CASE WHEN ((__L__) AT TIME ZONE days.tz - interval '1 hour') AT TIME ZONE days.tz = (__L__) "
          "THEN (__L__) AT TIME ZONE days.tz - interval '1 hour' ELSE (__L__) AT TIME ZONE days.tz END)")
FREE_TIME_CTE = _FREE_TIME_TEMPLATE
for _name, _minute in (("LOCAL_OPEN", "r.open_minute"), ("LOCAL_CLOSE", "r.close_minute"),
                       ("EXCEPTION_OPEN", "e.open_minute"), ("EXCEPTION_CLOSE", "e.close_minute")):
    FREE_TIME_CTE = FREE_TIME_CTE.replace(f"__{_name}__", _LOCAL.replace(
        "__L__", f"days.day + {_minute} * interval '1 minute'"))

FREE_INTERVALS = FREE_TIME_CTE.replace("__WHERE__", "i.id = ANY(%(ids)s)") + (
    "SELECT id, lower(r), upper(r) FROM free, unnest(free.free) r ORDER BY id, lower(r)")

# "Free for at least %(minutes)s minutes" per instrument, stopping at the first hit: the range is searched a
# chunk at a time, in order (chunks start 0, 1, 3, 7, … days after the range's start -- a day is the 1440
# below, ``availability.SEARCH_CHUNK_MINUTES`` -- or that many times %(minutes)s if longer, and each reaches
# %(minutes)s past the next one's start, so every long enough stretch lies whole in the chunk where it
# starts), the opening computed once and each chunk's bookings and downtime found by the range's index. The
# same algorithm as ``bookings.availability._FREE_FOR``, so that the raw limit does the same work.
_FREE_FOR_HITS = """
, hits AS (
    SELECT i.id, i.name_zh FROM catalog_instrument i JOIN opening o ON o.id = i.id JOIN usable u ON u.id = i.id
    WHERE EXISTS (
        SELECT 1 FROM generate_series(0, 12) n
        CROSS JOIN LATERAL (SELECT ((1 << n) - 1) * greatest(%(minutes)s, 1440) AS off) c
        CROSS JOIN LATERAL (SELECT lower(u.win) + c.off * interval '1 minute' AS at) a
        CROSS JOIN LATERAL (SELECT tstzrange(a.at, greatest(a.at, least(
            a.at + (c.off + greatest(%(minutes)s, 1440) + %(minutes)s) * interval '1 minute', upper(u.win))))
            AS win OFFSET 0) k
        CROSS JOIN LATERAL unnest(o.open * multirange(k.win) - coalesce((SELECT range_agg(x.r) FROM (
            SELECT tstzrange(b.start - u.buffer, b.blocked_until) AS r FROM bookings_booking b
            WHERE b.instrument_id = u.id AND b.state IN ('pending', 'confirmed', 'completed', 'no_show')
              AND b.start < upper(k.win) + u.buffer AND b.blocked_until > lower(k.win)
              AND tstzrange(b.start, b.blocked_until, '[)') && tstzrange(lower(k.win), upper(k.win) + u.buffer)
            UNION ALL
            SELECT tstzrange(d.start - u.buffer, d."end") FROM catalog_downtime d
            WHERE d.instrument_id = u.id AND d.start < upper(k.win) AND d."end" > lower(k.win)) x),
          '{}'::tstzmultirange)) r
        WHERE a.at <= upper(u.win) - %(minutes)s * interval '1 minute'
          AND upper(r) - lower(r) >= %(minutes)s * interval '1 minute')
)
SELECT id, count(*) OVER () FROM hits ORDER BY name_zh, id LIMIT %(limit)s
"""


def search_sql(where: str) -> str:
    """The page of instruments matching ``where`` with a free stretch of at least %(minutes)s minutes (sorted by
    name, at most %(limit)s), and how many there are, in one statement."""
    return FREE_TIME_CTE.replace("__WHERE__", where) + _FREE_FOR_HITS


# Search: category prefix, district, visible to everyone.
SEARCH = search_sql("i.listing_state = 'published' AND i.category_id LIKE %(prefix)s AND i.district = %(district)s")
