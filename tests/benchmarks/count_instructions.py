"""Instructions per booking request, counted by valgrind: a figure of the code, not of the machine.

CPU time per request on a shared virtual machine moves with the neighbours: the same commit measured
6.0 to 10.8 ms of app CPU per booking over HTTP within one afternoon, and the machine-speed figure of
``make bench`` moved by as much. The number of instructions a request executes does not move (within
about 1 %), so a change to the booking path can be judged by it in one run, on a busy machine:

    BENCH_DATABASE_URL=postgres://…/bench .venv/bin/python -m tests.benchmarks.count_instructions

It books free slots of one dense instrument (the dense scenario, kept with ``--reuse``) through Django's
test client with production settings, as ``profile_booking`` does, twice: ``--small`` requests, then
``--large``, each in a fresh process under ``valgrind --tool=cachegrind --cache-sim=no``, and divides
the difference of the two totals by the difference of the counts, so that start-up cancels out.
Everything that depends on the wall clock is held still while it counts, since valgrind runs the
process some fifty times slower: the outbox wake-up is taken as already queued (the busy path) and
the token's last use as just written (no once-a-minute touch). What start-up made is frozen out of the
garbage collector's walks (``gc.freeze``), whose timing would otherwise decide the figure. Figures are
printed, never asserted. The bookings it made are deleted at the end. Needs valgrind (Debian:
``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import shutil
import subprocess
import sys

PURPOSE = "bench: count instructions"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.count_instructions")
    parser.add_argument("--small", type=int, default=10, help="requests in the first run (default 10)")
    parser.add_argument("--large", type=int, default=60, help="requests in the second run (default 60)")
    parser.add_argument("--instrument", type=int, default=1,
                        help="which dense instrument (its position by id; default 1)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slots", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.environ.get("BENCH_DATABASE_URL"):
        parser.error("BENCH_DATABASE_URL names the benchmark database")
    if args.child is not None:
        return _book(args.child, args.instrument, args.slots)
    if args.large <= args.small:
        parser.error("--large must be more than --small")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed here (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    small, large = (_count(valgrind, n, args.instrument, args.large) for n in (args.small, args.large))
    print(f"{(large - small) / (args.large - args.small) / 1e6:.3f} M instructions per booking request "
          f"(totals {small:,} for {args.small} requests, {large:,} for {args.large})")
    return 0


def _count(valgrind: str, requests: int, instrument: int, most: int) -> int:
    """The instructions one process executes for ``requests`` bookings (plus start-up)."""
    command = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, "-m", "tests.benchmarks.count_instructions", "--child", str(requests),
               "--instrument", str(instrument), "--slots", str(most)]
    # A fixed hash seed: the same dictionaries in the same order in both runs.
    done = subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
                          check=False)
    total = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode or total is None:
        raise SystemExit(f"the counted run failed:\n{done.stderr[-3000:]}")
    return int(total.group(1).replace(",", ""))


def _book(requests: int, position: int, most: int) -> int:
    from .runner import _environment

    os.environ.update(_environment(os.environ["BENCH_DATABASE_URL"],
                                   os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")))
    os.environ["RATE_LIMIT_BOOKINGS"] = "1000000/m"
    import django

    django.setup()
    from django.core.cache import cache
    from django.test import Client

    from bookings.models import Booking
    from bookings.services import notifications
    from catalog.models import Instrument
    from instrumentshare.accounts.models import ApiToken

    from . import dense
    from .bench_booking_http import _bench_users
    from .profile_booking import free_slots

    instrument = Instrument.objects.filter(district=dense.DISTRICT).order_by("id")[position]
    (user_id, token), = _bench_users(type("Ctx", (), {"seed": 7})(), 1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    slot = dt.timedelta(minutes=instrument.policy.slot_minutes)
    now = dt.datetime.now(dt.UTC)
    free = free_slots(instrument, slot, now, 3 + max(most, requests))   # the same work in both runs

    def book(at):
        body = json.dumps({"instrument_id": instrument.pk, "start": at.isoformat(), "end": (at + slot).isoformat(),
                           "purpose": PURPOSE})
        return client.post("/api/v1/bookings", body, content_type="application/json").status_code

    try:
        cache.delete(notifications.WAKE_KEY)
        notifications.wake_outbox()   # the first queueing of a process imports and connects: not counted apart
        warm = [book(at) for at in free[:3]]
        # What start-up made (models, URL patterns, WhiteNoise's table of static files) is moved out of
        # the collector's reach: otherwise whether one of its full walks over them (tens of millions of
        # instructions with the collected static files) falls in the counted part decides the figure.
        gc.collect()
        gc.freeze()
        cache.set(notifications.WAKE_KEY, 1, 3600)
        ApiToken.objects.filter(user_id=user_id).update(last_used_at=now + dt.timedelta(days=1))
        statuses = [book(at) for at in free[3:3 + requests]]
        if set(warm + statuses) != {201}:
            print(f"not every booking was made: {sorted(set(warm + statuses))}", file=sys.stderr)
            return 1
    finally:
        cache.delete(notifications.WAKE_KEY)
        ApiToken.objects.filter(user_id=user_id).update(last_used_at=now)
        Booking.objects.filter(purpose=PURPOSE).delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
