"""When an instrument is free: one function for pages, the API, search and booking itself.

Free = opening hours (weekly rules in the instrument's zone, with per-day exceptions and,
if the policy says so, Chinese public holidays) minus active bookings (widened by the buffer
on both sides, because a new booking also needs its buffer before the next one) minus
downtime, clipped to the booking horizon. All arithmetic is on aware UTC datetimes; the local
wall-clock times are converted per day, so a DST change moves the UTC hours as it should.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import NamedTuple

from django.db import OperationalError, connection
from django.db.models import Func, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.utils import timezone

from catalog.hours import Interval, merge, opening_intervals
from catalog.models import Instrument
from instrumentshare.core import rows
from instrumentshare.core.time import SHOWABLE_MAX, SHOWABLE_MIN, showable

from .models import Booking

UTC = dt.UTC
__all__ = ["Interval", "merge", "opening_intervals"]  # opening hours are the catalog's; free time is ours


def subtract(free: list[Interval], busy: list[Interval]) -> list[Interval]:
    """free − busy, both sorted; linear in their lengths."""
    busy = merge(busy)
    result: list[Interval] = []
    index = 0
    for a, b in free:
        cursor = a
        while index < len(busy) and busy[index][1] <= cursor:
            index += 1
        probe = index
        while probe < len(busy) and busy[probe][0] < b:
            busy_start, busy_end = busy[probe]
            if busy_start > cursor:
                result.append((cursor, busy_start))
            cursor = max(cursor, busy_end)
            if cursor >= b:
                break
            probe += 1
        if cursor < b:
            result.append((cursor, b))
    return result


class Rule(NamedTuple):
    weekday: int
    open_minute: int
    close_minute: int


class DayException(NamedTuple):
    date: dt.date
    closed: bool
    open_minute: int | None
    close_minute: int | None


@dataclass
class Schedule:
    """What decides one instrument's free time near a range, read in one statement (``load_schedule``)."""

    rules: list[Rule]
    exceptions: list[DayException]
    bookings: list[tuple[dt.datetime, dt.datetime, dt.datetime]]  # active: (start, end, blocked_until)
    downtime: list[Interval]

    def busy_for_new_booking(self, buffer: dt.timedelta) -> list[Interval]:
        """Bookings and downtime widened by a new booking's buffer (it needs its buffer before the next one)."""
        busy = [(b_start - buffer, b_until) for b_start, _b_end, b_until in self.bookings]
        busy.extend((d_start - buffer, d_end) for d_start, d_end in self.downtime)
        return busy

    def public_busy(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        """Booked time (without the buffer) and downtime within [start, end), without personal data."""
        busy = [(b_start, b_end) for b_start, b_end, _until in self.bookings if b_start < end and b_end > start]
        busy += [(d_start, d_end) for d_start, d_end in self.downtime if d_start < end and d_end > start]
        return sorted(busy)


def load_schedule(instrument: Instrument, start: dt.datetime, end: dt.datetime, *, buffer: dt.timedelta,
                  bookings: bool = True, exclude_booking_id: int | None = None) -> Schedule:
    """Opening rules, the exceptions of the days in [start, end), active bookings and downtime near it.

    One ``UNION ALL`` statement instead of four: on the hot paths (the availability API, booking)
    the round trips cost more than the rows, and composing this union through the ORM costs
    more than running it, so it is written out once here. The booking rows cover both what a
    new booking must keep clear of (``start < end + buffer`` and ``blocked_until > start``) and
    the public busy time (``start < end`` and ``end > start``), the first being the wider.
    """
    zone = instrument.zone
    first_day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last_day = end.astimezone(zone).date()
    ops = connection.ops
    at, day = ops.adapt_datetimefield_value, ops.adapt_datefield_value
    sql = [_DOWNTIME_SQL, _RULES_SQL, _EXCEPTIONS_SQL]
    params = [instrument.pk, at(end), at(start), instrument.pk, instrument.pk, day(first_day), day(last_day)]
    if bookings:
        states = list(Booking.ACTIVE_STATES)
        postgresql = connection.vendor == "postgresql"
        sql.append(_BOOKINGS_SQL.format(instrument=_HIDDEN_ID if postgresql else "%s",
                                        states=", ".join(["%s"] * len(states)),
                                        overlap=_OVERLAP if postgresql else "",
                                        exclude="" if exclude_booking_id is None else " AND id <> %s"))
        params += [instrument.pk, *states, at(end + buffer), at(start)]
        if postgresql:
            params += [at(start), at(end + buffer)]
        if exclude_booking_id is not None:
            params.append(exclude_booking_id)
    schedule = Schedule(rules=[], exceptions=[], bookings=[], downtime=[])
    for kind, weekday, date, closed, a, b, since, until, blocked in rows.fetchall(" UNION ALL ".join(sql), params):
        if kind == "b":
            schedule.bookings.append((_aware(since), _aware(until), _aware(blocked)))
        elif kind == "d":
            schedule.downtime.append((_aware(since), _aware(until)))
        elif kind == "r":
            schedule.rules.append(Rule(weekday, a, b))
        else:
            schedule.exceptions.append(DayException(_date(date), bool(closed), a, b))
    schedule.rules.sort()
    schedule.bookings.sort()
    schedule.downtime.sort()
    return schedule


# The columns of every branch: kind, weekday, date, closed, open minute, close minute, start, end,
# blocked until. Typed NULLs, because PostgreSQL resolves a UNION's column types branch by branch.
# Every value is a parameter; only the number of states' placeholders is formatted in.
_DOWNTIME_SQL = (
    "SELECT 'd', CAST(NULL AS integer), CAST(NULL AS date), CAST(NULL AS boolean), CAST(NULL AS integer), "
    "CAST(NULL AS integer), start, \"end\", CAST(NULL AS timestamp with time zone) "
    "FROM catalog_downtime WHERE instrument_id = %s AND start < %s AND \"end\" > %s"
)
_RULES_SQL = (
    "SELECT 'r', weekday, CAST(NULL AS date), CAST(NULL AS boolean), open_minute, close_minute, "
    "CAST(NULL AS timestamp with time zone), CAST(NULL AS timestamp with time zone), "
    "CAST(NULL AS timestamp with time zone) FROM catalog_openingrule WHERE instrument_id = %s"
)
_EXCEPTIONS_SQL = (
    "SELECT 'x', CAST(NULL AS integer), date, closed, open_minute, close_minute, "
    "CAST(NULL AS timestamp with time zone), CAST(NULL AS timestamp with time zone), "
    "CAST(NULL AS timestamp with time zone) "
    "FROM catalog_openingexception WHERE instrument_id = %s AND date >= %s AND date <= %s"
)
_BOOKINGS_SQL = (
    "SELECT 'b', CAST(NULL AS integer), CAST(NULL AS date), CAST(NULL AS boolean), CAST(NULL AS integer), "
    "CAST(NULL AS integer), start, \"end\", blocked_until "
    "FROM bookings_booking WHERE instrument_id = {instrument} AND state IN ({states}) AND start < %s "
    "AND blocked_until > %s{overlap}{exclude}"
)
# PostgreSQL: the bookings near the range through the exclusion constraint's GiST index, as ``near`` (below)
# finds them and says why; here for the booking path's schedule, written out.
_HIDDEN_ID = "(SELECT CAST(%s AS bigint))"
_OVERLAP = " AND tstzrange(start, blocked_until, '[)') && tstzrange(%s, %s)"


def _aware(value) -> dt.datetime:
    """A UTC datetime from either backend (SQLite hands a UNION's timestamps back as text), read as
    the model fields read it: a stored year 9999 as a moment every zone can show (``core.time``)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return showable(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def _date(value) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def bookable_window(instrument: Instrument, *, now: dt.datetime) -> Interval:
    policy = instrument.policy
    earliest = now + dt.timedelta(minutes=policy.min_notice_minutes)
    latest = now + dt.timedelta(days=policy.horizon_days)
    return earliest, latest


def free_intervals(instrument: Instrument, start: dt.datetime, end: dt.datetime, *, now: dt.datetime | None = None,
                   exclude_booking_id: int | None = None, clip_to_window: bool = True,
                   schedule: Schedule | None = None) -> list[Interval]:
    """Free time in [start, end) for a new booking of this instrument (UTC intervals).

    ``schedule`` may be passed in, loaded by ``load_schedule`` for (at least) the same range.
    """
    now = now or timezone.now()
    if clip_to_window:
        earliest, latest = bookable_window(instrument, now=now)
        start, end = max(start, earliest), min(end, latest)
    if start >= end:
        return []
    buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
    if schedule is None and in_database():
        free = _database_free(instrument, start, end, buffer=buffer, exclude_booking_id=exclude_booking_id)
        if free is not None:
            return free
    if schedule is None:
        schedule = load_schedule(instrument, start, end, buffer=buffer, exclude_booking_id=exclude_booking_id)
    opening = opening_intervals(instrument, start, end, rules=schedule.rules, exceptions=schedule.exceptions)
    if not opening:
        return []
    return subtract(opening, schedule.busy_for_new_booking(buffer))


def longest_free_minutes(intervals: list[Interval]) -> int:
    return max((int((b - a).total_seconds() // 60) for a, b in intervals), default=0)


def instruments_free_for(instruments, start: dt.datetime, end: dt.datetime, minutes: int, *,
                         now: dt.datetime | None = None) -> set[int]:
    """Ids of the given instruments with at least ``minutes`` of contiguous free time in [start, end).

    On PostgreSQL one statement over the materialized opening windows answers for every instrument
    they cover; Python answers for the rest (and for every instrument on SQLite).
    """
    now = now or timezone.now()
    if in_database():
        found, uncovered = _database_free_for(list(instruments.values_list("pk", flat=True)), start, end, minutes,
                                              now=now)
        if uncovered:
            found |= _python_free_for(instruments.filter(pk__in=uncovered), start, end, minutes, now=now)
        return found
    return _python_free_for(instruments, start, end, minutes, now=now)


def _python_free_for(instruments, start: dt.datetime, end: dt.datetime, minutes: int, *,
                     now: dt.datetime) -> set[int]:
    """``instruments_free_for`` in Python: four queries whatever the number of instruments (the instruments
    with their policies, their opening rules, the exceptions, and the bookings plus downtime in the window)."""
    from collections import defaultdict

    from catalog.models import Downtime, OpeningException, OpeningRule

    candidates = {i.pk: i for i in instruments.select_related("policy")}
    if not candidates:
        return set()
    ids = list(candidates)
    rules, exceptions, busy = defaultdict(list), defaultdict(list), defaultdict(list)
    for rule in OpeningRule.objects.filter(instrument_id__in=ids):
        rules[rule.instrument_id].append(rule)
    window_days = (start.date() - dt.timedelta(days=2), end.date() + dt.timedelta(days=2))
    for exception in OpeningException.objects.filter(instrument_id__in=ids, date__range=window_days):
        exceptions[exception.instrument_id].append(exception)
    max_buffer = dt.timedelta(minutes=max(i.policy.buffer_minutes for i in candidates.values()))
    for instrument_id, b_start, b_until in Booking.objects.filter(
        instrument_id__in=ids, state__in=Booking.ACTIVE_STATES, start__lt=end + max_buffer, blocked_until__gt=start,
    ).values_list("instrument_id", "start", "blocked_until"):
        busy[instrument_id].append((b_start, b_until))
    for instrument_id, d_start, d_end in Downtime.objects.filter(
        instrument_id__in=ids, start__lt=end, end__gt=start
    ).values_list("instrument_id", "start", "end"):
        busy[instrument_id].append((d_start, d_end))
    result = set()
    for instrument_id, instrument in candidates.items():
        earliest, latest = bookable_window(instrument, now=now)
        window_start, window_end = max(start, earliest), min(end, latest)
        if window_end - window_start < dt.timedelta(minutes=minutes):
            continue
        opening = opening_intervals(instrument, window_start, window_end, rules=rules[instrument_id],
                                    exceptions=exceptions[instrument_id])
        buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
        widened = [(a - buffer, b) for a, b in busy[instrument_id]]
        if longest_free_minutes(subtract(opening, widened)) >= minutes:
            result.add(instrument_id)
    return result


# --- free time in PostgreSQL ----------------------------------------------------------------------------
#
# The same definition as above, as ranges: the opening windows (``catalog.windows``, materialized from
# ``catalog.hours.opening_intervals``) within the asked range clipped to the bookable window, minus active
# bookings and downtime widened by the buffer before them. Used only where the instrument's window cover
# holds the whole range; ``tests/bookings/test_free_time_paths.py`` holds it equal to the Python path.


def span(start, end) -> Func:
    """``tstzrange(start, end, '[)')``, spelled as in the ``booking_no_overlap`` index so that it serves."""
    from django.contrib.postgres.fields import DateTimeRangeField

    return Func(start, end, Value("[)"), function="tstzrange", output_field=DateTimeRangeField())


def near(rows: QuerySet[Booking], instrument_id: int, start: dt.datetime, end: dt.datetime) -> QuerySet[Booking]:
    """``rows`` of one instrument, where ``rows``' own conditions already keep only bookings whose
    ``[booking.start, booking.blocked_until)`` overlaps ``[start, end)``.

    On PostgreSQL they are found through the exclusion constraint's GiST index (instrument, [start,
    blocked_until)): the overlap is said again in the index's terms, and the instrument's id is a subquery, a
    value the planner does not see. Given the number, it read the instrument's bookings by the (instrument,
    start) index from the very first one and dropped the old ones by their end (a dense instrument with a
    year of history: 13,000 rows, 3 ms per booking); given the range alone, it ANDed a scan of the GiST index
    across all instruments. The raw statements here (``_HIDDEN_ID``, ``_SHOWN``) are written the same way.
    """
    if connection.vendor != "postgresql":
        return rows.filter(instrument_id=instrument_id)
    return (rows.filter(instrument_id=RawSQL("SELECT CAST(%s AS bigint)", (instrument_id,)))
            .alias(span=span("start", "blocked_until")).filter(span__overlap=span(Value(start), Value(end))))


def in_database() -> bool:
    return connection.vendor == "postgresql"


# ``asked``: (id, buffer, lo, hi), the range to answer per instrument. Hours, not days, so that no
# session time zone moves the horizon by a DST hour.
_ASKED_ONE = "SELECT %(id)s::bigint AS id, %(buffer)s * interval '1 minute' AS buffer, " \
             "%(lo)s::timestamptz AS lo, %(hi)s::timestamptz AS hi"
_ASKED_MANY = """SELECT i.id, p.buffer_minutes * interval '1 minute' AS buffer,
    greatest(%(start)s::timestamptz, %(now)s::timestamptz + p.min_notice_minutes * interval '1 minute') AS lo,
    least(%(end)s::timestamptz, %(now)s::timestamptz + p.horizon_days * interval '24 hours') AS hi
    FROM catalog_instrument i JOIN catalog_bookingpolicy p ON p.instrument_id = i.id WHERE i.id = ANY(%(ids)s)"""
# Free time of the instrument ``u`` (a row of ``usable``) within the range ``__WIN__``: its windows, minus its
# active bookings and downtime widened by the buffer.
# The bookings' ``&&`` says again what the two comparisons before it say, in the form of the exclusion
# constraint's GiST index (``booking_no_overlap``), which then finds just the bookings in the range; by
# ``blocked_until`` alone the planner read every later booking of a dense calendar (4 weeks to find one).
# ``greatest`` in ``win``: with the bounds given as parameters the planner may build the range before the
# WHERE drops an empty window, and a range whose end precedes its start is an error.
_FREE_IN = """(coalesce((SELECT range_agg(tstzrange(w.start, w."end")) FROM catalog_openingwindow w
                WHERE w.instrument_id = u.id AND tstzrange(w.start, w."end") && __WIN__),
               '{}'::tstzmultirange) * multirange(__WIN__)
      - coalesce((SELECT range_agg(tstzrange(b.start - u.buffer, b.blocked_until)) FROM bookings_booking b
                  WHERE b.instrument_id = u.id AND b.state = ANY(%(states)s) AND b.start < upper(__WIN__) + u.buffer
                    AND b.blocked_until > lower(__WIN__) AND b.id <> %(exclude)s
                    AND tstzrange(b.start, b.blocked_until, '[)')
                        && tstzrange(lower(__WIN__), upper(__WIN__) + u.buffer)
                 ), '{}'::tstzmultirange)
      - coalesce((SELECT range_agg(tstzrange(d.start - u.buffer, d."end")) FROM catalog_downtime d
                  WHERE d.instrument_id = u.id AND d.start < upper(__WIN__) AND d."end" > lower(__WIN__)),
                 '{}'::tstzmultirange))"""
_USABLE = """WITH asked AS (__ASKED__),
usable AS MATERIALIZED (
    SELECT a.id, a.buffer, tstzrange(a.lo, greatest(a.lo, a.hi)) AS win, c.instrument_id IS NOT NULL AS covered
    FROM asked a LEFT JOIN catalog_openingwindowcover c
      ON c.instrument_id = a.id AND c.start <= a.lo AND a.hi <= c."end"
    WHERE a.lo < a.hi
)"""
_FREE_SQL = """__USABLE__,
free AS (
    SELECT u.id, u.covered, CASE WHEN u.covered THEN __FREE__ END AS free
    FROM usable u
)
__ANSWER__""".replace("__USABLE__", _USABLE).replace("__FREE__", _FREE_IN.replace("__WIN__", "u.win"))
# One instrument: its free ranges in order (a row with NULLs when it has none), or one row with
# ``covered`` false when the windows do not cover the range.
_FREE_ONE = _FREE_SQL.replace("__ASKED__", _ASKED_ONE).replace("__ANSWER__", (
    "SELECT free.covered, lower(r), upper(r) FROM free LEFT JOIN LATERAL unnest(free.free) r ON true "
    "ORDER BY lower(r)"))
# The active bookings shown in [start, end) (the public busy time), found as ``near`` finds them: the ``&&``
# says again what the comparisons say (``end`` is never after ``blocked_until``).
_SHOWN = """b.instrument_id = (SELECT CAST(%(id)s AS bigint)) AND b.state = ANY(%(states)s)
      AND b.start < %(end)s AND b."end" > %(start)s
      AND tstzrange(b.start, b.blocked_until, '[)') && tstzrange(%(start)s, greatest(%(start)s, %(end)s))"""
# One instrument's free ranges ('f') and its public busy time ('b': active bookings without the buffer,
# downtime) in the asked range; an 'n' row instead of the free ranges when the windows do not cover it.
_FREE_AND_BUSY = _FREE_SQL.replace("__ASKED__", _ASKED_ONE).replace("__ANSWER__", """
SELECT 'f', lower(r), upper(r) FROM free, unnest(free.free) r WHERE free.covered
UNION ALL SELECT 'n', NULL, NULL FROM free WHERE NOT free.covered
UNION ALL SELECT 'b', b.start, b."end" FROM bookings_booking b
    WHERE __SHOWN__
UNION ALL SELECT 'b', d.start, d."end" FROM catalog_downtime d
    WHERE d.instrument_id = %(id)s AND d.start < %(end)s AND d."end" > %(start)s
ORDER BY 1, 2, 3""").replace("__SHOWN__", _SHOWN)
# The same, as the API's JSON (``bookings.api.AvailabilityOut`` as ninja renders it, byte for byte:
# ``{"start": "…Z", "end": "…Z"}`` items, milliseconds when there are any, cut as Django's encoder cuts
# them): PostgreSQL writes the text, so the web process neither parses 2,000 timestamps nor renders them.
# NULL ``uncovered`` means the bookable window is empty (no free time); true, that the windows do not
# cover the range.
# Each list is written by one output function and then edited as text, not instant by instant: its pairs
# are aggregated into a two-dimensional array of instants, whose JSON (``[["2026-12-03T22:00:00+00:00",
# "2026-12-03T22:20:00+00:00"],…]``) four ``replace`` passes turn into the items (``_ITEMS``). Four weeks of
# a dense calendar, 2,000 intervals: about 1.6 ms of the statement's 7 less than formatting each instant.
# The JSON of an instant is written in the session's zone: it must be UTC (``+00:00`` is what the edits look
# for); ``database_free_and_busy_json`` checks it and otherwise leaves the answer to the Python path.
# Every instant is within the years 1 to 9999 (the bookable window; the busy time is clipped to the
# showable days). A fraction of a second (written with 1 to 6 digits) becomes exactly three, cut as
# Django cuts it. A multirange's ranges are unnested in ascending order (its storage order), so the free time
# needs no sort.
_MILLISECONDS = (r"regexp_replace(regexp_replace(regexp_replace(__T__, '\.(\d{3})\d+\+', '.\1+', 'g'), "
                 r"'\.(\d\d)\+', '.\10+', 'g'), '\.(\d)\+', '.\100+', 'g')")
_ITEMS = "CASE WHEN strpos(__T__, '.') = 0 THEN __T__ ELSE __MS__ END".replace("__MS__", _MILLISECONDS)
for _old, _new in [('+00:00","', 'Z", "end": "'), ('+00:00"],["', 'Z"}, {"start": "'), ('[["', '[{"start": "'),
                   ('+00:00"]]', 'Z"}]')]:
    _ITEMS = f"replace({_ITEMS}, '{_old}', '{_new}')"
_FREE_AND_BUSY_JSON = _FREE_SQL.replace("__ASKED__", _ASKED_ONE).replace("__ANSWER__", """
SELECT (SELECT NOT covered FROM free),
  (SELECT coalesce(__FREE__, '[]') FROM (
      SELECT to_json(array_agg(ARRAY[lower(r), upper(r)]))::text AS pairs
      FROM free, unnest(free.free) r WHERE free.covered OFFSET 0) f),
  (SELECT coalesce(__BUSY__, '[]') FROM (
      SELECT to_json(array_agg(ARRAY[x.a, x.b] ORDER BY x.a, x.b))::text AS pairs FROM (
          SELECT least(greatest(b.start, %(showable_min)s), %(showable_max)s) AS a,
                 least(greatest(b."end", %(showable_min)s), %(showable_max)s) AS b FROM bookings_booking b
          WHERE __SHOWN__
          UNION ALL
          SELECT least(greatest(d.start, %(showable_min)s), %(showable_max)s),
                 least(greatest(d."end", %(showable_min)s), %(showable_max)s) FROM catalog_downtime d
          WHERE d.instrument_id = %(id)s AND d.start < %(end)s AND d."end" > %(start)s) x
      OFFSET 0) p)
""".replace("__FREE__", _ITEMS.replace("__T__", "f.pairs")).replace("__BUSY__", _ITEMS.replace("__T__", "p.pairs"))
   .replace("__SHOWN__", _SHOWN))


# --- stored days -------------------------------------------------------------------------------------------
# Four weeks of a dense calendar are 2,000 intervals: computing them (a thousand bookings read and subtracted)
# and writing their JSON is most of an availability request. Each whole UTC day inside the bookable part of
# the range is kept as the text the API writes (``FreeDay``: the day's free items, cut at midnight, and the
# items of what starts that day); a read computes the edges of the range (the part of a day before the
# first midnight, after the last) and the days not stored, stores those days, and joins the texts. The
# database keeps the days honest (migration ``bookings.0012``): a booking's change raises the version of
# the days it touches, a change of hours, downtime or policy the instrument's epoch. A day computed here is
# stored only if its version is still the one read at the statement's start (``WHERE f.version =
# excluded.version``: ON CONFLICT sees the latest committed row, and waits for a writer still at work on
# it) and is tagged with the epoch read then, so that neither a booking committed meanwhile nor a change of
# hours is ever hidden. The result is the same text as ``_FREE_AND_BUSY_JSON``'s
# (``tests/bookings/test_stored_days.py``). ``%(a)s`` and ``%(b)s``: the first and the last midnight of the
# bookable part [lo, hi) (``lo <= a < b <= hi``). A free range is cut at each midnight it crosses (``pieces``;
# most lie within a day and are kept whole).
# The active states written in (not a parameter), so that a generic plan of the prepared statement can use the
# partial indexes on them (``booking_no_overlap``).
_ACTIVE = "(" + ", ".join(f"'{state}'" for state in Booking.ACTIVE_STATES) + ")"
_DAY = "interval '24 hours'"
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
_STORED_JSON = ("""__USABLE__,
epoch AS MATERIALIZED (
    SELECT coalesce((SELECT e.epoch FROM bookings_freeepoch e WHERE e.instrument_id = %(id)s), 0) AS epoch),
stored AS MATERIALIZED (
    SELECT f.day, f.version, f.free IS NOT NULL AND f.epoch = (SELECT epoch FROM epoch) AS fresh,
           f.free, f.busy, f.free_head, f.free_tail
    FROM bookings_freeday f WHERE f.instrument_id = %(id)s AND f.day >= %(a)s AND f.day < %(b)s),
days AS MATERIALIZED (
    SELECT d AS day FROM usable u
    CROSS JOIN generate_series(%(a)s::timestamptz, %(b)s::timestamptz - __DAY__, __DAY__) d
    WHERE u.covered AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.day = d AND s.fresh)),
live AS MATERIALIZED (
    SELECT u.id, u.buffer, m.win, m.wide, m.shown FROM usable u CROSS JOIN LATERAL (
        SELECT range_agg(x.r) FILTER (WHERE x.free) AS win,
               range_agg(tstzrange(lower(x.r), upper(x.r) + u.buffer)) FILTER (WHERE x.free) AS wide,
               range_agg(x.r) FILTER (WHERE x.shown) AS shown FROM (
            SELECT tstzrange(lower(u.win), %(a)s::timestamptz) AS r, true AS free, false AS shown
            UNION ALL SELECT tstzrange(%(start)s::timestamptz, %(a)s::timestamptz), false, true
            UNION ALL SELECT tstzrange(day, day + __DAY__), true, true FROM days
            UNION ALL SELECT tstzrange(%(b)s::timestamptz, upper(u.win)), true, false
            UNION ALL SELECT tstzrange(%(b)s::timestamptz, greatest(%(b)s::timestamptz, %(end)s)), false, true) x) m
    WHERE u.covered),
free AS (
    SELECT (coalesce((SELECT range_agg(tstzrange(w.start, w."end")) FROM catalog_openingwindow w
                      WHERE w.instrument_id = l.id AND tstzrange(w.start, w."end") && l.win), '{}'::tstzmultirange)
            * l.win
          - coalesce((SELECT range_agg(tstzrange(b.start - l.buffer, b.blocked_until)) FROM bookings_booking b
                      WHERE b.instrument_id = l.id AND b.state IN __ACTIVE__ AND b.start < upper(l.win) + l.buffer
                        AND b.blocked_until > lower(l.win) AND b.id <> %(exclude)s
                        AND tstzrange(b.start, b.blocked_until, '[)') && l.wide), '{}'::tstzmultirange)
          - coalesce((SELECT range_agg(tstzrange(d.start - l.buffer, d."end")) FROM catalog_downtime d
                      WHERE d.instrument_id = l.id AND d.start < upper(l.win) AND d."end" > lower(l.win)),
                     '{}'::tstzmultirange)) AS free
    FROM live l),
pieces AS (
    SELECT x.day, x.r FROM free, unnest(free.free) r
    CROSS JOIN LATERAL (SELECT date_bin(__DAY__, lower(r), __ORIGIN__) AS first) f
    CROSS JOIN LATERAL (
        SELECT f.first AS day, r WHERE upper(r) <= f.first + __DAY__
        UNION ALL
        SELECT d, r * tstzrange(d, d + __DAY__)
        FROM generate_series(f.first, upper(r) - interval '1 microsecond', __DAY__) d
        WHERE upper(r) > f.first + __DAY__) x),
free_days AS (
    SELECT day, to_json(array_agg(ARRAY[lower(r), upper(r)] ORDER BY lower(r)))::text AS pairs,
           min(lower(r)) = day AS head, max(upper(r)) = day + __DAY__ AS tail
    FROM pieces GROUP BY day),
busy_days AS (
    SELECT x.day, to_json(array_agg(ARRAY[x.a, x.b] ORDER BY x.a, x.b))::text AS pairs FROM (
        SELECT CASE WHEN y.s < %(a)s THEN %(a)s::timestamptz - __DAY__ WHEN y.s >= %(b)s THEN %(b)s::timestamptz
                    ELSE date_bin(__DAY__, y.s, __ORIGIN__) END AS day,
               least(greatest(y.s, %(showable_min)s), %(showable_max)s) AS a,
               least(greatest(y.e, %(showable_min)s), %(showable_max)s) AS b
        FROM (SELECT b.start AS s, b."end" AS e FROM live l, bookings_booking b
              WHERE b.instrument_id = l.id AND b.state IN __ACTIVE__
                AND b.start < %(end)s AND b."end" > %(start)s AND tstzrange(b.start, b.blocked_until, '[)') && l.shown
              UNION ALL
              SELECT d.start, d."end" FROM live l, catalog_downtime d
              WHERE d.instrument_id = %(id)s AND d.start < %(end)s AND d."end" > %(start)s) y
        WHERE y.s < %(a)s OR y.s >= %(b)s OR date_bin(__DAY__, y.s, __ORIGIN__) IN (SELECT day FROM days)) x
    GROUP BY x.day),
computed AS MATERIALIZED (
    SELECT coalesce(f.day, p.day) AS day, coalesce(__FREE__, '') AS free, coalesce(__BUSY__, '') AS busy,
           coalesce(f.head, false) AS head, coalesce(f.tail, false) AS tail
    FROM free_days f FULL JOIN busy_days p ON p.day = f.day),
saved AS (
    INSERT INTO bookings_freeday AS f (instrument_id, day, version, epoch, free, busy, free_head, free_tail)
    SELECT %(id)s, d.day, coalesce(s.version, 0), (SELECT epoch FROM epoch), coalesce(c.free, ''),
           coalesce(c.busy, ''), coalesce(c.head, false), coalesce(c.tail, false)
    FROM days d LEFT JOIN stored s ON s.day = d.day LEFT JOIN computed c ON c.day = d.day
    ORDER BY d.day
    ON CONFLICT (instrument_id, day) DO UPDATE SET epoch = excluded.epoch, free = excluded.free,
        busy = excluded.busy, free_head = excluded.free_head, free_tail = excluded.free_tail
    WHERE f.version = excluded.version)
SELECT NULL::timestamptz, NOT covered, NULL::text, NULL::text, false, false FROM usable
UNION ALL SELECT day, NULL, free, busy, free_head, free_tail FROM stored WHERE fresh
UNION ALL SELECT day, NULL, free, busy, head, tail FROM computed
ORDER BY 1 NULLS FIRST""").replace("__USABLE__", _USABLE.replace("__ASKED__", _ASKED_ONE)).replace(
    "__DAY__", _DAY).replace("__ORIGIN__", _ORIGIN).replace("__ACTIVE__", _ACTIVE).replace(
    "__FREE__", f"btrim({_ITEMS.replace('__T__', 'f.pairs')}, '[]')").replace(
    "__BUSY__", f"btrim({_ITEMS.replace('__T__', 'p.pairs')}, '[]')")
_ONE_DAY = dt.timedelta(hours=24)
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=UTC)
_END = ', "end": "'


def _midnights(lo: dt.datetime, hi: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The first UTC midnight at or after ``lo`` and the last at or before ``hi`` (whole days counted as
    integers: ``timedelta // timedelta`` is exact where a float quotient might not be)."""
    return _EPOCH - ((_EPOCH - lo) // _ONE_DAY) * _ONE_DAY, _EPOCH + ((hi - _EPOCH) // _ONE_DAY) * _ONE_DAY


def _stored_json(params: dict) -> tuple[str, str] | None:
    """The availability's two JSON arrays from stored days and the rest computed (``_STORED_JSON``), or None
    where the windows do not cover the range. A free item that ends at a midnight where the next day's first
    one starts is one item: the two are joined here, as the text says them."""
    found = rows.fetchall(_STORED_JSON, params)
    if found[0][1]:
        return None
    free: list[str] = []
    busy: list[str] = []
    open_until = None  # the midnight the last free item reaches, if it does
    for day, _uncovered, day_free, day_busy, head, tail in found[1:]:
        if day_free:
            if head and open_until == day:
                last = free[-1]
                free[-1] = last[:last.rindex(_END)] + day_free[day_free.index(_END):]
            else:
                free.append(day_free)
            open_until = day + _ONE_DAY if tail else None
        if day_busy:
            busy.append(day_busy)
    return "[" + ", ".join(free) + "]", "[" + ", ".join(busy) + "]"

# Days kept stored ahead: the four weeks a calendar shows.
STORED_AHEAD = dt.timedelta(days=28)


def keep_stored_days(*, now: dt.datetime | None = None, ahead: dt.timedelta = STORED_AHEAD) -> dict:
    """Hourly (``bookings.tasks.keep_stored_days_task``): drop the stored days that have passed, and store the
    next ``ahead`` of every instrument with opening windows, so that the first read after the daily refresh
    of the windows (which makes every stored day stale) or after a booking finds its days ready. Only the
    days missing or stale are computed. PostgreSQL only; elsewhere nothing is stored."""
    from catalog.models import OpeningWindowCover

    from .models import FreeDay

    if not in_database():
        return {"dropped": 0, "instruments": 0}
    now = now or timezone.now()
    dropped, _kinds = FreeDay.objects.filter(day__lt=now - 2 * _ONE_DAY).delete()
    instruments = (Instrument.objects.filter(pk__in=OpeningWindowCover.objects.values("instrument_id"))
                   .select_related("policy").order_by("pk"))
    count = 0
    for instrument in instruments.iterator(chunk_size=500):
        database_free_and_busy_json(instrument, now, now + ahead, now=now)
        count += 1
    return {"dropped": dropped, "instruments": count}

# Many: the ids with a long enough free range, and those the windows do not cover. "Is there one?" stops at
# the first: the asked range is searched in chunks, in order, each computed as above, and the search ends at
# the first chunk that holds a long enough free range. Chunks start at the offsets ``search_chunks`` gives
# (0, a day, 3 days, 7 days, …: each twice as long as the one before) and reach ``need`` past the next one's
# start, so that every stretch of ``need`` lies whole in the chunk where it starts: the answer is the same as
# over the whole range. A busy instrument with a free stretch early costs a day of its bookings instead of
# the whole range's; a booked-up one costs the whole range once, plus ``need`` per chunk (a handful).
# ``OFFSET 0`` keeps the chunk's range a value computed once: inlined, its expression was evaluated again
# for every booking the index found (a booked-up search took 2.3 times as long as one over the whole range;
# ``usable`` is materialized for the same reason).
_FREE_FOR = """__USABLE__
SELECT u.id, u.covered FROM usable u
WHERE NOT u.covered OR EXISTS (
    SELECT 1 FROM unnest(%(offsets)s::int[]) c(off)
    CROSS JOIN LATERAL (SELECT lower(u.win) + c.off * interval '1 minute' AS at) a
    CROSS JOIN LATERAL (SELECT tstzrange(a.at, greatest(a.at, least(
        a.at + (c.off + %(step)s + %(need)s) * interval '1 minute', upper(u.win)))) AS win OFFSET 0) k
    CROSS JOIN LATERAL unnest(__FREE__) r
    WHERE a.at <= upper(u.win) - %(need)s * interval '1 minute'
      AND upper(r) - lower(r) >= %(need)s * interval '1 minute')""".replace(
    "__USABLE__", _USABLE.replace("__ASKED__", _ASKED_MANY)).replace("__FREE__", _FREE_IN.replace("__WIN__", "k.win"))
# A day, in minutes: the first search chunk (``_FREE_FOR``), unless the stretch asked for is longer.
SEARCH_CHUNK_MINUTES = 24 * 60


def search_chunks(span_minutes: int, need: int) -> tuple[int, list[int]]:
    """(step, offsets): where the chunks of ``_FREE_FOR`` start, in minutes after the range's start, for a
    range of ``span_minutes`` and a stretch of ``need``. The chunk at ``off`` reaches the next one's start
    (``2 * off + step``) plus ``need``."""
    step = max(need, SEARCH_CHUNK_MINUTES)
    offsets, at = [], 0
    while at <= span_minutes - need:
        offsets.append(at)
        at = 2 * at + step
    return step, offsets


def _database_free(instrument: Instrument, start: dt.datetime, end: dt.datetime, *, buffer: dt.timedelta,
                   exclude_booking_id: int | None = None) -> list[Interval] | None:
    """Free time in [start, end) (already clipped to the bookable window), or None outside the window cover."""
    params = {"id": instrument.pk, "buffer": buffer.total_seconds() / 60, "lo": start, "hi": end,
              "states": list(Booking.ACTIVE_STATES), "exclude": exclude_booking_id or 0}
    found = rows.fetchall(_FREE_ONE, params)
    if not found or not found[0][0]:
        return None
    return [(showable(a), showable(b)) for _covered, a, b in found if a is not None]


def database_free_and_busy(instrument: Instrument, start: dt.datetime, end: dt.datetime, *,
                           now: dt.datetime | None = None) -> tuple[list[Interval], list[Interval]] | None:
    """``bookings.queries.free_and_busy`` in one statement, or None outside the window cover."""
    free, busy = [], []
    for kind, a, b in rows.fetchall(_FREE_AND_BUSY, _free_and_busy_params(instrument, start, end, now=now)):
        if kind == "n":
            return None
        (free if kind == "f" else busy).append((showable(a), showable(b)))
    return free, busy


def database_free_and_busy_json(instrument: Instrument, start: dt.datetime, end: dt.datetime, *,
                                now: dt.datetime | None = None) -> tuple[str, str] | None:
    """``database_free_and_busy`` as the two JSON arrays of the availability API, or None outside the cover
    (and where the session's zone is not UTC)."""
    connection.ensure_connection()
    if connection.connection.pgconn.parameter_status(b"TimeZone") != b"UTC":
        return None  # the statement's text edits need UTC (``_FREE_AND_BUSY_JSON``); the Python path answers
    params = _free_and_busy_params(instrument, start, end, now=now)
    params.update(showable_min=SHOWABLE_MIN, showable_max=SHOWABLE_MAX)
    if params["lo"] < params["hi"]:
        params["a"], params["b"] = _midnights(params["lo"], params["hi"])
        if params["a"] < params["b"]:  # a whole day to store or read
            try:
                return _stored_json(params)
            except OperationalError as error:
                # The deadlock detector ended this read rather than a writer (two writers of several days'
                # rows, one in an unusual order): outside a transaction, computing it all answers instead.
                if connection.in_atomic_block or getattr(error.__cause__, "sqlstate", None) != "40P01":
                    raise
    uncovered, free, busy = rows.run(_FREE_AND_BUSY_JSON, params)
    if uncovered:
        return None
    return free, busy


def _free_and_busy_params(instrument: Instrument, start: dt.datetime, end: dt.datetime, *,
                          now: dt.datetime | None) -> dict:
    earliest, latest = bookable_window(instrument, now=now or timezone.now())
    return {"id": instrument.pk, "buffer": instrument.policy.buffer_minutes, "lo": max(start, earliest),
            "hi": min(end, latest), "start": start, "end": end, "states": list(Booking.ACTIVE_STATES), "exclude": 0}


def _database_free_for(ids: list[int], start: dt.datetime, end: dt.datetime, minutes: int, *,
                       now: dt.datetime) -> tuple[set[int], list[int]]:
    """(ids with ``minutes`` of contiguous free time, ids the window cover does not hold) among ``ids``."""
    if not ids:
        return set(), []
    step, offsets = search_chunks(math.ceil((end - start).total_seconds() / 60), minutes)
    params = {"ids": ids, "start": start, "end": end, "now": now, "need": minutes, "step": step,
              "offsets": offsets, "states": list(Booking.ACTIVE_STATES), "exclude": 0}
    # Not prepared (``rows.run``): after five runs PostgreSQL may keep a generic plan of a prepared statement,
    # and this one's best plan depends on how many ids and how long a range it is given.
    with connection.cursor() as cursor:
        cursor.execute(_FREE_FOR, params)
        found = cursor.fetchall()
    return {pk for pk, covered in found if covered}, [pk for pk, covered in found if not covered]
