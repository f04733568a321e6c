"""Dense calendars at the raw limit (issue #21): HTTP against gunicorn, with CPU per request.

The instruments of ``tests/benchmarks/dense.py`` (a 20-minute booking every 40 minutes, around the
clock, 1,008 in four weeks each) are asked, over HTTP, to gunicorn with the production config and
4 sync workers: availability for four weeks, the free-between search, a week of calendar events,
the public iCalendar feed of the feed instrument (5,000 events), and booking create into the
20-minute gaps (1 client, then 8 clients with 10% colliding requests).

Beside latency and throughput each figure reports CPU per request: the user + system time of
gunicorn's master and workers (``/proc``) over the requests sent, and, when the PostgreSQL server
runs on this machine, of the server's processes (backends and background processes alike). The
raw limit is the same work as one SQL statement through psycopg (plus the plain Python that turns
its rows into the same kind of answer, for the events and the feed), run from this process.
Figures are reported, never asserted; the correctness checks (every slot won once, no overlapping
active rows, the same free intervals as the raw query) are.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random
import time
import uuid
from urllib.parse import urlencode

from . import dense
from .bench_booking_http import (
    HTTP_PURPOSE,
    RAW_INSERT,
    Planned,
    _bench_users,
    _check,
    _run_clients,
    booking_sender,
    overlapping_pairs,
    raw_limit,
    start_gunicorn,
    stop,
)
from .bench_booking_http import RAW_PURPOSE as RAW_LIMIT_PURPOSE
from .harness import (
    Context,
    Result,
    calibration_ms,
    percentile,
    postgres_server_pid,
    skipped,
    tree_cpu_seconds,
    wait_until_idle,
)
from .rawsql import FREE_INTERVALS, FREE_TIME_CTE, search_sql

PREFIX = "dense: "
WORKERS = 4
COLLIDING = 0.10
RAW_PURPOSE = "bench: dense raw insert"

# The free-between search narrowed to the dense instruments' district, as the API runs it for
# anonymous callers (published ones, sorted by name), first page and the count, in one statement.
DENSE_SEARCH = search_sql("i.listing_state = 'published' AND i.district = %(district)s")

# A week of calendar events: the free intervals and the busy ones (active bookings and downtime,
# widened by the buffer) in one statement.
RAW_EVENTS = FREE_INTERVALS.replace(
    "SELECT id, lower(r), upper(r) FROM free, unnest(free.free) r ORDER BY id, lower(r)",
    """SELECT 'free', lower(r), upper(r) FROM free, unnest(free.free) r
UNION ALL
SELECT 'busy', lower(r), upper(r) FROM busy, unnest(busy.busy) r""")

# Availability answers the free intervals and the public busy ones (active bookings and downtime in the
# asked range, not widened): the raw limit does the same work, in one statement.
RAW_AVAILABILITY = FREE_TIME_CTE.replace("__WHERE__", "i.id = ANY(%(ids)s)") + """
SELECT 'free', lower(r), upper(r) FROM free, unnest(free.free) r
UNION ALL
SELECT 'busy', b.start, b."end" FROM bookings_booking b
WHERE b.instrument_id = ANY(%(ids)s) AND b.state IN ('pending', 'confirmed', 'completed', 'no_show', 'held')
  AND b.start < %(end)s AND b."end" > %(start)s
UNION ALL
SELECT 'busy', d.start, d."end" FROM catalog_downtime d
WHERE d.instrument_id = ANY(%(ids)s) AND d.start < %(end)s AND d."end" > %(start)s
ORDER BY 1, 2, 3
"""

RAW_PUBLIC_FEED = """
SELECT b.uid, b.sequence, b.start, b."end", b.updated_at, b.state FROM bookings_booking b
WHERE b.instrument_id = %(instrument)s AND b.state IN ('pending', 'confirmed', 'completed', 'no_show', 'held')
  AND b.start < %(end)s AND b."end" > %(start)s ORDER BY b.start, b.id LIMIT 20000
"""


class Meter:
    """CPU seconds of gunicorn's process tree and of the PostgreSQL server's, between two readings."""

    def __init__(self, app_pid: int | None, db_pid: int | None):
        self.app_pid, self.db_pid = app_pid, db_pid

    def read(self) -> tuple[float | None, float | None]:
        return (tree_cpu_seconds(self.app_pid) if self.app_pid else None,
                tree_cpu_seconds(self.db_pid) if self.db_pid else None)

    @staticmethod
    def per_request(before, after, requests: int) -> tuple[float | None, float | None]:
        """Milliseconds of CPU per request (app, database)."""
        return tuple(None if a is None or b is None or not requests else (b - a) * 1000 / requests
                     for a, b in zip(before, after, strict=True))


class Http:
    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str, query: dict | None = None) -> tuple[int, bytes, float]:
        url = path + ("?" + urlencode(query) if query else "")
        started = time.perf_counter()
        try:
            self.conn.request("GET", url)
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            raise
        return response.status, body, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.conn.close()


def _measure(meter: Meter, calls) -> dict:
    """Run ``calls`` (a list of zero-argument callables returning (status, body, ms)) with CPU readings."""
    before = meter.read()
    started = time.perf_counter()
    outcomes = [call() for call in calls]
    seconds = time.perf_counter() - started
    app_ms, db_ms = Meter.per_request(before, meter.read(), len(outcomes))
    return {"times": [ms for _s, _b, ms in outcomes], "statuses": [s for s, _b, _ms in outcomes],
            "bodies": [b for _s, b, _ms in outcomes], "seconds": seconds, "app_cpu_ms": app_ms, "db_cpu_ms": db_ms}


def _raw(meter: Meter, calls) -> dict:
    """Run raw calls (callables returning a value); milliseconds each and the server's CPU per call."""
    before = meter.read()
    times, answers = [], []
    for call in calls:
        started = time.perf_counter()
        answers.append(call())
        times.append((time.perf_counter() - started) * 1000)
    _app, db_ms = Meter.per_request(before, meter.read(), len(calls))
    return {"times": times, "answers": answers, "db_cpu_ms": db_ms}


def _cpu_results(name: str, ours: dict, raw: dict | None, app_target: str = "", app_limit: float | None = None):
    app, db = ours["app_cpu_ms"], ours["db_cpu_ms"]
    results = [Result(f"{PREFIX}{name}: app CPU per request", app, "ms", target=app_target,
                      met=None if app is None or app_limit is None else app <= app_limit,
                      note="" if app is not None else "no /proc here")]
    results.append(Result(f"{PREFIX}{name}: database CPU per request", db, "ms",
                          raw=raw.get("db_cpu_ms") if raw else None,
                          note="" if db is not None else "skipped: the database server is not a local PostgreSQL"))
    return results


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


# --- the reads ---------------------------------------------------------------------------------------------


def availability(ctx, client: Http, meter: Meter, ids, window, raw_conn) -> list[Result]:
    from .harness import median

    name = "availability, one instrument, 4 weeks"
    start, end, now = window
    query = {"start": start.isoformat(), "end": end.isoformat()}
    for pk in ids[:5]:
        client.get(f"/api/v1/instruments/{pk}/availability", query)
    # First with no stored day (as after the daily refresh of the windows, before the hourly job has run):
    # each read computes its four weeks and stores them. Then the same reads again, from the stored days
    # (what the hourly job keeps ready): the figure the target is for.
    cold = None
    if raw_conn is not None:
        raw_conn.execute("TRUNCATE bookings_freeday")
        cold = _measure(meter, [lambda pk=pk: client.get(f"/api/v1/instruments/{pk}/availability", query)
                                for pk in ids])
    ours = _measure(meter, [lambda pk=pk: client.get(f"/api/v1/instruments/{pk}/availability", query) for pk in ids])
    failures = sum(status != 200 for status in ours["statuses"])
    answers = [json.loads(body) if status == 200 else None
               for status, body in zip(ours["statuses"], ours["bodies"], strict=True)]
    intervals = [len(answer["free"]) if answer else None for answer in answers]
    busy = [len(answer["busy"]) if answer else None for answer in answers]
    p50, p99 = median(ours["times"]), percentile(ours["times"], 99)
    details = {"requests": len(ids), "failures": failures, "free_intervals_median": median(
        [n for n in intervals if n is not None]), "seconds": ours["seconds"]}
    raw = None
    if raw_conn is not None:
        def raw_call(pk):
            return raw_conn.execute(RAW_AVAILABILITY, {"ids": [pk], "start": start, "end": end, "now": now}).fetchall()

        for pk in ids[:3]:
            raw_call(pk)
        raw = _raw(meter, [lambda pk=pk: raw_call(pk) for pk in ids])
        details["answers_differing_from_raw"] = sum(
            (ours_free, ours_busy) != (sum(row[0] == "free" for row in rows), sum(row[0] == "busy" for row in rows))
            for ours_free, ours_busy, rows in zip(intervals, busy, raw["answers"], strict=True))
    raw_p50 = median(raw["times"]) if raw else None
    results = [
        Result(f"{PREFIX}{name}: p50", p50, "ms", raw=raw_p50, target="≤ 5 ms; ≤ 1.5× raw",
               met=p50 <= 5 and (raw_p50 is None or p50 <= 1.5 * raw_p50), details=details),
        Result(f"{PREFIX}{name}: p99", p99, "ms", raw=percentile(raw["times"], 99) if raw else None),
        *_cpu_results(name, ours, raw, "≤ 3 ms", 3),
    ]
    if cold is not None:
        cold_bodies = [body for status, body, _ms in zip(cold["statuses"], cold["bodies"], cold["times"],
                                                         strict=True) if status == 200]
        # The two passes ask at different moments: the first free item may start at "now + notice". Past the
        # first midnight an hour after the range's start, which no such moment reaches, they must be the same.
        cut = (start + dt.timedelta(hours=1)).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)

        def settled(body: bytes):
            answer = json.loads(body)
            free = [item for item in answer["free"] if _utc(item["end"]) > cut]
            if free and _utc(free[0]["start"]) < cut:
                free[0] = {"end": free[0]["end"]}
            return answer["busy"], free

        details["answers_differing_between_computed_and_stored"] = sum(
            settled(a) != settled(b) for a, b in zip(cold["bodies"], ours["bodies"], strict=True))
        cold_name = f"{name}, computed and stored (no stored day yet)"
        results += [
            Result(f"{PREFIX}{cold_name}: p50", median(cold["times"]), "ms", raw=raw_p50, details={
                "failures": len(cold["times"]) - len(cold_bodies)}),
            *_cpu_results(cold_name, cold, raw),
        ]
    return results


def history(ctx, client: Http, meter: Meter, ids, window, raw_conn) -> list[Result]:
    """Availability of the instrument with a year of completed bookings behind it (``dense.build``), beside a
    dense instrument without history, alternating: the past must not be read to answer the next four weeks."""
    from bookings.models import Booking

    from .harness import median

    past = Booking.objects.filter(instrument_id=ids[1], purpose=dense.HISTORY_PURPOSE).count() if len(ids) > 2 else 0
    if not past:
        return []
    name = f"availability, 4 weeks, an instrument with {past:,} past bookings"
    start, end, now = window
    query = {"start": start.isoformat(), "end": end.isoformat()}
    repeat = ctx.size(smoke=3, quick=20, full=50)
    calls = [lambda pk=pk: client.get(f"/api/v1/instruments/{pk}/availability", query)
             for _ in range(repeat) for pk in (ids[1], ids[2])]
    for call in calls[:4]:
        call()
    ours = _measure(meter, calls)
    times_with, times_without = ours["times"][0::2], ours["times"][1::2]
    details = {"requests": repeat, "failures": sum(status != 200 for status in ours["statuses"]),
               "history_bookings": past,
               "p50_of_a_dense_instrument_without_history_alternating": median(times_without)}
    raw = None
    if raw_conn is not None:
        params = {"ids": [ids[1]], "start": start, "end": end, "now": now}
        raw_conn.execute(RAW_AVAILABILITY, params).fetchall()
        raw = _raw(meter, [lambda: raw_conn.execute(RAW_AVAILABILITY, params).fetchall()] * repeat)
    return [Result(f"{PREFIX}{name}: p50", median(times_with), "ms", raw=median(raw["times"]) if raw else None,
                   details=details)]


def search(ctx, client: Http, meter: Meter, window, raw_conn) -> list[Result]:
    from .harness import median

    name = "free-between search, free ≥ 15 min in 7 days"
    start, _end, now = window
    free_to = start + dt.timedelta(days=7)
    query = {"district": dense.DISTRICT, "free_from": start.isoformat(), "free_to": free_to.isoformat(),
             "free_hours": "0.25"}
    repeat = ctx.size(smoke=3, quick=10, full=20)
    client.get("/api/v1/instruments", query)
    ours = _measure(meter, [lambda: client.get("/api/v1/instruments", query)] * repeat)
    status, body = ours["statuses"][-1], ours["bodies"][-1]
    page = json.loads(body) if status == 200 else {}
    p50 = median(ours["times"])
    details = {"searches": repeat, "status": status, "count": page.get("count"),
               "first_page": [item["id"] for item in page.get("items", [])], "p99": percentile(ours["times"], 99)}
    raw = None
    if raw_conn is not None:
        params = {"district": dense.DISTRICT, "start": start, "end": free_to, "now": now, "minutes": 15,
                  "limit": page.get("page_size") or 20}
        raw_conn.execute(DENSE_SEARCH, params).fetchall()
        raw = _raw(meter, [lambda: raw_conn.execute(DENSE_SEARCH, params).fetchall()] * repeat)
        rows = raw["answers"][-1]
        details["raw_count"] = rows[0][1] if rows else 0
        details["answer_differs_from_raw"] = (details["raw_count"], [row[0] for row in rows]) != (
            page.get("count"), details["first_page"])
    return [Result(f"{PREFIX}{name}: p50", p50, "ms", raw=median(raw["times"]) if raw else None,
                   target="≤ 50 ms", met=p50 <= 50, details=details),
            *_cpu_results(name, ours, raw)]


def events(ctx, client: Http, meter: Meter, ids, window, raw_conn) -> list[Result]:
    from .harness import median

    name = "calendar events, one instrument, 1 week"
    start, _end, now = window
    week_end = start + dt.timedelta(days=7)
    query = {"start": start.isoformat(), "end": week_end.isoformat()}
    chosen = ids[: ctx.size(smoke=3, quick=20, full=100)]
    for pk in chosen[:3]:
        client.get(f"/bookings/instrument/{pk}/events", query)
    ours = _measure(meter, [lambda pk=pk: client.get(f"/bookings/instrument/{pk}/events", query) for pk in chosen])
    counts = [len(json.loads(body)) if status == 200 else None
              for status, body in zip(ours["statuses"], ours["bodies"], strict=True)]
    details = {"requests": len(chosen), "failures": sum(s != 200 for s in ours["statuses"]),
               "events_median": median([n for n in counts if n is not None])}
    raw = None
    if raw_conn is not None:
        def raw_call(pk):
            rows = raw_conn.execute(RAW_EVENTS, {"ids": [pk], "start": start, "end": week_end, "now": now}).fetchall()
            return json.dumps([{"start": a.isoformat(), "end": b.isoformat(), "kind": kind} for kind, a, b in rows])

        raw_call(chosen[0])
        raw = _raw(meter, [lambda pk=pk: raw_call(pk) for pk in chosen])
    p50 = median(ours["times"])
    return [Result(f"{PREFIX}{name}: p50", p50, "ms", raw=median(raw["times"]) if raw else None, details=details),
            *_cpu_results(name, ours, raw)]


def feed(ctx, client: Http, meter: Meter, feed_id: int, raw_conn) -> list[Result]:
    from bookings import queries

    from .harness import median

    repeat = ctx.size(smoke=2, quick=5, full=10)
    path = f"/bookings/feeds/instrument/{feed_id}.ics"
    status, body, _ms = client.get(path)
    count = body.count(b"BEGIN:VEVENT")
    name = f"public iCalendar feed, one instrument, {count:,} events"
    ours = _measure(meter, [lambda: client.get(path)] * repeat)
    details = {"events": count, "status": status, "bytes": len(body), "runs": repeat}
    raw = None
    if raw_conn is not None:
        now = dt.datetime.now(dt.UTC)
        window = {"instrument": feed_id, "start": now - dt.timedelta(days=queries.FEED_PAST_DAYS),
                  "end": now + dt.timedelta(days=queries.FEED_FUTURE_DAYS)}
        raw = _raw(meter, [lambda: _raw_public_feed(raw_conn, window)] * repeat)
        details["raw_events"] = raw["answers"][-1].count(b"BEGIN:VEVENT")
    p50 = median(ours["times"])
    return [Result(f"{PREFIX}{name}: p50", p50, "ms", raw=median(raw["times"]) if raw else None,
                   target="≤ 200 ms (5,000 events)", met=p50 <= 200 if count >= 5000 else None, details=details),
            *_cpu_results("public iCalendar feed", ours, raw)]


def _raw_public_feed(conn, window: dict) -> bytes:
    utc = "%Y%m%dT%H%M%SZ"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//InstrumentShare//Bookings//ZH-EN", "CALSCALE:GREGORIAN"]
    for uid, sequence, start, end, updated, state in conn.execute(RAW_PUBLIC_FEED, window):
        lines += ["BEGIN:VEVENT", f"UID:{uid}@instrumentshare", f"SEQUENCE:{sequence}",
                  f"DTSTAMP:{updated.astimezone(dt.UTC):{utc}}", f"DTSTART:{start.astimezone(dt.UTC):{utc}}",
                  f"DTEND:{end.astimezone(dt.UTC):{utc}}", "STATUS:" + ("TENTATIVE" if state == "pending" else
                                                                         "CONFIRMED"),
                  "SUMMARY:占用 Busy", "TRANSP:OPAQUE", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


# --- booking create ------------------------------------------------------------------------------------


def make_plans(ctx: Context, ids: list[int], timeline: dt.datetime, users: int) -> tuple[list, list, list]:
    """Plans into the dense timeline's free gaps: the warm-up's (a few bookings per worker, not measured),
    one client's (all distinct) and 8 clients' (10% colliding)."""
    rng = random.Random(ctx.seed + 21)
    days = max(2, ctx.size(smoke=3, quick=27, full=27))
    gaps = {pk: dense.free_gaps(timeline, 1, days) for pk in ids}
    now = dt.datetime.now(dt.UTC)
    for pk in ids:
        gaps[pk] = [gap for gap in gaps[pk] if gap[0] >= now + dt.timedelta(minutes=90)]
        rng.shuffle(gaps[pk])
    order = list(ids)

    def take(count: int, first_slot: int) -> list[Planned]:
        plan = []
        while len(plan) < count and any(gaps[pk] for pk in order):
            for pk in order:
                if gaps[pk] and len(plan) < count:
                    start, end = gaps[pk].pop()
                    plan.append(Planned(pk, start, end, 0, rng.randrange(users), first_slot + len(plan)))
            rng.shuffle(order)
        return plan

    warm = take(WORKERS * 4, -WORKERS * 4)
    single = take(ctx.size(smoke=10, quick=100, full=200), 0)
    requests = ctx.size(smoke=24, quick=800, full=1600)
    unique = take(round(requests * (1 - COLLIDING)), len(single))
    many = list(unique)
    for _ in range(requests - len(unique)):
        if not unique:
            break
        position = rng.randrange(max(1, len(many) - 8), len(many) + 1)
        original = many[max(0, position - rng.randint(1, 8))]
        many.insert(position, Planned(original.instrument_id, original.start, original.end, 0,
                                      (original.user_index + 1 + rng.randrange(max(1, users - 1))) % users,
                                      original.slot))
    return warm, single, many


def booking_create(ctx, port: int, meter: Meter, ids, timeline, users, raw_conn) -> list[Result]:
    from bookings.models import Booking

    from .harness import median

    name = "booking create"
    tokens = [token for _user, token in users]
    user_ids = [user for user, _token in users]
    warm, single, many = make_plans(ctx, ids, timeline, len(users))
    details: dict = {"one_client_requests": len(single), "eight_client_requests": len(many),
                     "colliding_requests": len(many) - len({p.slot for p in many})}
    # One client, after a warm-up: refused requests (too soon: the booking path imported, no row), then a
    # few bookings per worker, so that what a worker does once (its first publish to the broker, its Redis
    # connection, lazy imports) is not counted as a cost of every booking. They are deleted with the rest.
    errors: dict = {}
    send = booking_sender(port, tokens, errors, timeout=60)
    state: dict = {}
    for index in range(WORKERS * 3):
        past = timeline - dt.timedelta(days=1, minutes=40 * index)
        send(state, Planned(ids[0], past, past + dt.timedelta(minutes=20), 0, 0, -1))
    errors.clear()
    warm_statuses = [send(state, planned) for planned in warm]
    details["warm_up_bookings"] = {status: warm_statuses.count(status) for status in set(warm_statuses)}
    before = meter.read()
    one = []
    for planned in single:
        started = time.perf_counter()
        status = send(state, planned)
        one.append((len(one), (time.perf_counter() - started) * 1000, status))
    one_app, one_db = Meter.per_request(before, meter.read(), len(single))
    if state.get("close"):
        state["close"]()
    one_check = _check(single, one)
    # Eight clients.
    before = meter.read()
    seconds, outcomes = _run_clients(many, send)
    many_app, many_db = Meter.per_request(before, meter.read(), len(many))
    check = _check(many, outcomes)
    created = check["statuses"].get(201, 0)
    rate = created / seconds
    latencies = [ms for _i, ms, _s in outcomes]
    overlaps = overlapping_pairs(ids)
    correct = (one_check["slots_won_once"] == one_check["slots"] and check["slots_won_once"] == check["slots"]
               and not check["slots_won_twice_or_more"] and not errors)
    details.update({"one_client": one_check, "eight_clients": check, "seconds": seconds, "errors": errors,
                    "every_slot_won_exactly_once": correct, "requests_per_second": len(outcomes) / seconds,
                    "app_cpu_ms_per_request_8_clients": many_app, "db_cpu_ms_per_request_8_clients": many_db})
    # The created bookings go (booking_sender writes bench_booking_http's purpose), with the rows that
    # hang on them (their billing account, notifications): the raw runs below book the same slots.
    details["rows_deleted_afterwards"] = Booking.objects.filter(purpose=HTTP_PURPOSE).delete()[0]
    raw_one_p50 = raw_rate = raw_p99 = raw_db_one = raw_db_many = None
    if raw_conn is not None:
        raw_times = []
        before = meter.read()
        for planned in single:
            started = time.perf_counter()
            raw_conn.execute(RAW_INSERT, (planned.instrument_id, user_ids[planned.user_index], planned.start,
                                          planned.end, planned.end, RAW_PURPOSE, uuid.uuid4()))
            raw_times.append((time.perf_counter() - started) * 1000)
        _app, raw_db_one = Meter.per_request(before, meter.read(), len(single))
        raw_one_p50 = median(raw_times)
        before = meter.read()
        raw_seconds, raw_outcomes = raw_limit(ctx, many, user_ids)
        _app, raw_db_many = Meter.per_request(before, meter.read(), len(many))
        raw_check = _check(many, raw_outcomes)
        raw_rate = raw_check["statuses"].get(201, 0) / raw_seconds
        raw_p99 = percentile([ms for _i, ms, _s in raw_outcomes], 99)
        details["raw"] = {"one_client": {"p50_ms": raw_one_p50}, "eight_clients": {**raw_check,
                                                                                    "seconds": raw_seconds}}
        # bench_booking_http.raw_limit writes its own purpose; both kinds of raw row go.
        details["raw"]["rows_deleted_afterwards"] = Booking.objects.filter(
            purpose__in=[RAW_PURPOSE, RAW_LIMIT_PURPOSE]).delete()[0]
    one_p50 = median([ms for _i, ms, _s in one])
    app_target = "≤ 5 ms per booking"
    return [
        Result(f"{PREFIX}{name}, 1 client: p50", one_p50, "ms", raw=raw_one_p50, target="≤ 10 ms",
               met=one_p50 <= 10, details=details),
        Result(f"{PREFIX}{name}, 1 client: app CPU per booking", one_app, "ms", target=app_target,
               met=None if one_app is None else one_app <= 5),
        Result(f"{PREFIX}{name}, 1 client: database CPU per booking", one_db, "ms", raw=raw_db_one),
        Result(f"{PREFIX}{name}, 8 clients: bookings/s", rate, "/s", raw=raw_rate, target="≥ 200/s",
               met=rate >= 200, better="higher"),
        Result(f"{PREFIX}{name}, 8 clients: p99", percentile(latencies, 99), "ms", raw=raw_p99),
        Result(f"{PREFIX}{name}, 8 clients: app CPU per request", many_app, "ms", target=app_target,
               met=None if many_app is None else many_app <= 5),
        Result(f"{PREFIX}{name}, 8 clients: database CPU per request", many_db, "ms", raw=raw_db_many),
        Result(f"{PREFIX}{name}: overlapping active rows", overlaps, "", target="0, every slot won once",
               met=overlaps == 0 and correct, note="" if correct else "a slot was not won exactly once"),
    ]


# --- the benchmark ---------------------------------------------------------------------------------------


def run(ctx: Context) -> list[Result]:
    from django.db import connection

    ids = dense.instrument_ids()
    if not ids:
        return [skipped(PREFIX + "all figures", "", "no dense instruments (python -m tests.benchmarks --scenario "
                                                    "dense builds them)")]
    timeline = dense.timeline_start(ids)
    now = dt.datetime.now(dt.UTC)
    start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    window = (start, start + dt.timedelta(days=28), now)
    users = _bench_users(ctx, ctx.size(smoke=4, quick=40, full=40))
    connection.close()  # gunicorn's workers and this process must not share a connection
    raw_conn = ctx.raw_connection(autocommit=True) if ctx.postgres else None
    db_pid = postgres_server_pid(raw_conn) if raw_conn is not None else None
    speed_before = calibration_ms()
    process, port, _log = start_gunicorn(ctx, workers=WORKERS)
    meter = Meter(process.pid, db_pid)
    client = Http(port)
    results: list[Result] = []
    try:
        waited = wait_until_idle(process.pid)  # every worker started, not just the one that answered /healthz
        for _ in range(WORKERS * 3):  # warm every worker: imports, connection, URL resolver
            client.get("/healthz")
            client.get(f"/api/v1/instruments/{ids[0]}/availability",
                       {"start": window[0].isoformat(), "end": (window[0] + dt.timedelta(days=1)).isoformat()})
        results += availability(ctx, client, meter, ids, window, raw_conn)
        results += history(ctx, client, meter, ids, window, raw_conn)
        results += search(ctx, client, meter, window, raw_conn)
        results += events(ctx, client, meter, ids, window, raw_conn)
        results += feed(ctx, client, meter, ids[0], raw_conn)
        client.close()
        results += booking_create(ctx, port, meter, ids, timeline, users, raw_conn)
    finally:
        client.close()
        stop(process)
        if raw_conn is not None:
            raw_conn.close()
    speed = [speed_before, calibration_ms()]
    results.append(Result(f"{PREFIX}machine speed: CPU for a fixed piece of Python (lower is faster)",
                          sum(speed) / 2, "ms", note="compare CPU figures of two runs through it",
                          details={"before_and_after_the_benchmarks": speed}))
    results[0].details.update({"dense_instruments": len(ids), "gunicorn_workers": WORKERS,
                               "seconds_waited_for_the_workers_to_start": round(waited, 1),
                               "database_cpu_measured": db_pid is not None, "timeline_start": timeline.isoformat()})
    if not ctx.postgres:
        results.append(skipped(PREFIX + "raw limits", "", "the raw limits use PostgreSQL (multiranges, psycopg)"))
    return results
