"""Raw-limit SQL shared by the benchmarks: free time as PostgreSQL multiranges, in one statement.

Free = opening hours (weekly rules in the instrument's zone, exception days replacing them)
intersected with the bookable window (now + notice .. now + horizon, clipped to the asked range),
minus active bookings widened by the buffer before them, minus downtime. The same definition as
``bookings.availability`` except Chinese public holidays, which the database does not know.
"""

FREE_TIME_CTE = """
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
    SELECT days.id, (days.day + r.open_minute * interval '1 minute') AT TIME ZONE days.tz AS a,
           (days.day + r.close_minute * interval '1 minute') AT TIME ZONE days.tz AS b
    FROM days CROSS JOIN LATERAL (
        SELECT r.open_minute, r.close_minute FROM catalog_openingrule r
        WHERE r.instrument_id = days.id AND r.weekday = extract(isodow FROM days.day)::int - 1
    ) r
    WHERE NOT EXISTS (SELECT 1 FROM catalog_openingexception e WHERE e.instrument_id = days.id AND e.date = days.day)
    UNION ALL
    SELECT days.id, (days.day + e.open_minute * interval '1 minute') AT TIME ZONE days.tz,
           (days.day + e.close_minute * interval '1 minute') AT TIME ZONE days.tz
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

FREE_INTERVALS = FREE_TIME_CTE.replace("__WHERE__", "i.id = ANY(%(ids)s)") + (
    "SELECT id, lower(r), upper(r) FROM free, unnest(free.free) r ORDER BY id, lower(r)")

# Search: the page of instruments (category prefix, district, visible to everyone) with a free
# stretch of at least %(minutes)s minutes, and how many there are, in one statement.
SEARCH = FREE_TIME_CTE.replace(
    "__WHERE__", "i.listing_state = 'published' AND i.category_id LIKE %(prefix)s AND i.district = %(district)s"
) + """
, hits AS (
    SELECT i.id, i.name_zh FROM catalog_instrument i JOIN free ON free.id = i.id
    WHERE EXISTS (SELECT 1 FROM unnest(free.free) r WHERE upper(r) - lower(r) >= %(minutes)s * interval '1 minute')
)
SELECT id, count(*) OVER () FROM hits ORDER BY name_zh, id LIMIT %(limit)s
"""
