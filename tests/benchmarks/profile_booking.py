"""Profile the booking path in one process: where a ``POST /api/v1/bookings`` spends its time.

Run against a benchmark database that holds a city or the dense scenario (``--reuse`` keeps one):

    BENCH_DATABASE_URL=postgres://…/bench .venv/bin/python -m tests.benchmarks.profile_booking --requests 300

It books free slots of the dense instruments (or of any bookable instrument) through Django's
test client with production settings (DEBUG off), prints the SQL statements of one request, the
CPU time per request (this process's, and its PostgreSQL server process's when that runs on this
machine), and a pyinstrument profile of the rest (``--html FILE`` writes it as HTML).
The bookings it made are deleted at the end. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.profile_booking")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--html", help="write pyinstrument's HTML report here")
    parser.add_argument("--cprofile", type=int, default=0, help="also print cProfile's N top functions (CPU time)")
    parser.add_argument("--full-sql", action="store_true", help="print each statement whole")
    parser.add_argument("--path", default="/api/v1/bookings", help="POST path (default: the booking API)")
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        parser.error("BENCH_DATABASE_URL names the benchmark database")
    from .runner import _environment

    os.environ.update(_environment(url, os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")))
    os.environ["RATE_LIMIT_BOOKINGS"] = "1000000/m"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from bookings.models import Booking
    from catalog.models import Instrument

    from . import dense
    from .bench_booking_http import _bench_users
    from .harness import tree_cpu_seconds

    purpose = "bench: profile booking"
    # A dense instrument when the dense scenario is loaded (its 20-minute gaps), else any open one.
    instrument = (Instrument.objects.filter(district=dense.DISTRICT).order_by("id").first()
                  or Instrument.objects.filter(listing_state="published", policy__mode="slots",
                                               policy__approval="none").order_by("id").first())
    (user_id, token), = _bench_users(type("Ctx", (), {"seed": 7})(), 1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    slot = dt.timedelta(minutes=instrument.policy.slot_minutes)
    now = dt.datetime.now(dt.UTC)
    free = free_slots(instrument, slot, now, args.requests * 2 + 1)

    def book(at):
        body = json.dumps({"instrument_id": instrument.pk, "start": at.isoformat(), "end": (at + slot).isoformat(),
                           "purpose": purpose})
        return client.post(args.path, body, content_type="application/json")

    try:
        with CaptureQueriesContext(connection) as queries:
            response = book(free.pop(0))
        print(f"instrument {instrument.pk}, first request {response.status_code}, {len(queries)} statements:")
        for query in queries.captured_queries:
            print(f"  {float(query['time']) * 1000:6.2f} ms", query["sql"][:150 if not args.full_sql else None])
        half = args.requests // 2
        statuses: dict[int, int] = {}
        backend = _backend_pid(connection)
        db_cpu = tree_cpu_seconds(backend) if backend else None
        cpu, wall = time.process_time(), time.perf_counter()
        for at in free[:half]:
            code = book(at).status_code
            statuses[code] = statuses.get(code, 0) + 1
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        count = sum(statuses.values())
        db_after = tree_cpu_seconds(backend) if backend else None
        db = "" if db_cpu is None or db_after is None else \
            f", {(db_after - db_cpu) / count * 1000:.2f} ms in this connection's PostgreSQL process"
        print(f"{count} requests {statuses}: {cpu / count * 1000:.2f} ms CPU and {wall / count * 1000:.2f} ms wall "
              f"per request (this process, no profiler){db}")
        profiler = Profiler(interval=0.0005)
        with profiler:
            for at in free[half:args.requests]:
                book(at)
        if args.cprofile:
            import cProfile
            import pstats

            cprofiler = cProfile.Profile(time.process_time)
            cprofiler.enable()
            for at in free[args.requests:args.requests * 2]:
                book(at)
            cprofiler.disable()
            stats = pstats.Stats(cprofiler).sort_stats(os.environ.get("CPROFILE_SORT", "cumulative"))
            stats.print_stats(args.cprofile)
            if os.environ.get("CPROFILE_CALLERS"):
                stats.print_callers(os.environ["CPROFILE_CALLERS"])
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        if args.html:
            with open(args.html, "w") as out:
                out.write(profiler.output_html())
    finally:
        deleted = Booking.objects.filter(purpose=purpose).delete()
        print("deleted", deleted)
    return 0


def _backend_pid(connection) -> int | None:
    """The server process of this connection, when the database is PostgreSQL on this machine."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def free_slots(instrument, slot: dt.timedelta, now: dt.datetime, wanted: int) -> list[dt.datetime]:
    """Up to ``wanted`` free slots from tomorrow to the end of the booking horizon, in one pass over the
    instrument's active bookings (ordered by start; no two overlap, the exclusion constraint holds)."""
    from bookings.models import Booking

    taken = list(Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES, end__gt=now)
                 .order_by("start").values_list("start", "blocked_until"))
    start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    horizon = now + dt.timedelta(days=instrument.policy.horizon_days) - slot
    free, index = [], 0
    while len(free) < wanted and start < horizon:
        while index < len(taken) and taken[index][1] <= start:
            index += 1
        if index == len(taken) or start + slot <= taken[index][0]:
            free.append(start)
        start += slot
    return free


if __name__ == "__main__":
    raise SystemExit(main())
