"""Booking create through the HTTP API under gunicorn, 8 concurrent clients, 200 hot instruments, 10% colliding.

The plan (which user books which slot) is made once and replayed twice: as raw single-row
INSERTs through psycopg against the same exclusion constraint (the raw limit), whose rows are
then deleted, and as ``POST /api/v1/bookings`` requests to gunicorn started with the production
config (``deploy/gunicorn.conf.py``). Every slot must be won exactly once, every loser must get
409, and no two active bookings may overlap.
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .harness import ACTIVE_STATES, Context, Result, percentile, wait_until_idle

FIGURE = "booking create (HTTP, gunicorn, 8 clients)"
CLIENTS = 8
COLLIDING = 0.10
ROOT = Path(__file__).resolve().parents[2]
RAW_PURPOSE = "bench: raw insert"
HTTP_PURPOSE = "bench: HTTP create"


@dataclass
class Planned:
    instrument_id: int
    start: dt.datetime
    end: dt.datetime
    buffer_minutes: int
    user_index: int
    slot: int  # requests with the same slot collide


def _hot_instruments(ctx: Context, count: int):
    from catalog.models import Instrument

    candidates = list(Instrument.objects.filter(
        listing_state="published", share_mode="external", status="normal", policy__mode="slots",
        policy__qualification_required=False, policy__approval="none").select_related("policy").order_by("id"))
    return random.Random(ctx.seed).sample(candidates, min(count, len(candidates)))


def _bench_users(ctx: Context, count: int) -> list[tuple[int, str]]:
    """(user id, API token) for generated people with a lab, so each booking has a lab to charge."""
    from instrumentshare.accounts.models import User
    from instrumentshare.accounts.services import create_api_token

    ids = list(User.objects.filter(is_active=True, is_platform_admin=False, memberships__isnull=False)
               .order_by("id").values_list("id", flat=True).distinct())
    chosen = random.Random(ctx.seed + 1).sample(ids, min(count, len(ids)))
    users = []
    for user in User.objects.filter(pk__in=chosen).order_by("id"):
        _token, plain = create_api_token(user=user, name="benchmark")
        users.append((user.pk, plain))
    return users


def _slots(instrument, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    from bookings.availability import free_intervals

    policy = instrument.policy
    duration = dt.timedelta(minutes=max(policy.min_minutes, 60))
    grid = policy.slot_minutes * 60
    start = now + dt.timedelta(days=1)
    end = now + dt.timedelta(days=min(policy.horizon_days - 1, 40))
    slots = []
    for a, b in free_intervals(instrument, start, end, now=now):
        cursor = _ceil(a, grid)
        while cursor + duration <= b:
            slots.append((cursor, cursor + duration))
            # The next slot leaves room for this one's buffer: back-to-back would collide by design.
            cursor = _ceil(cursor + duration + dt.timedelta(minutes=policy.buffer_minutes), grid)
    return slots


def _ceil(value: dt.datetime, seconds: int) -> dt.datetime:
    # The generated zones have whole-hour offsets, so the UTC grid is the local grid.
    epoch = int(value.timestamp())
    return dt.datetime.fromtimestamp(-(-epoch // seconds) * seconds, dt.UTC)


def make_plan(ctx: Context, instruments, users: int, requests: int, now: dt.datetime) -> list[Planned]:
    rng = random.Random(ctx.seed + 2)
    free = {instrument.pk: _slots(instrument, now) for instrument in instruments}
    buffers = {instrument.pk: instrument.policy.buffer_minutes for instrument in instruments}
    unique = math.ceil(requests * (1 - COLLIDING))
    plan: list[Planned] = []
    order = [pk for pk in free if free[pk]]
    while len(plan) < unique and order:
        rng.shuffle(order)
        for pk in list(order):
            if not free[pk]:
                order.remove(pk)
                continue
            start, end = free[pk].pop(rng.randrange(min(4, len(free[pk]))))
            plan.append(Planned(pk, start, end, buffers[pk], rng.randrange(users), len(plan)))
            if len(plan) >= unique:
                break
    # Each collision repeats one of the last few requests by another user: some race in flight.
    for _ in range(requests - len(plan)):
        position = rng.randrange(max(1, len(plan) - 8), len(plan) + 1) if plan else 0
        original = plan[max(0, position - rng.randint(1, 8))]
        plan.insert(position, Planned(original.instrument_id, original.start, original.end, original.buffer_minutes,
                                      (original.user_index + 1 + rng.randrange(users - 1)) % users
                                      if users > 1 else 0, original.slot))
    return plan


def _run_clients(plan: list[Planned], send) -> tuple[float, list[tuple[int, float, int]]]:
    """Run ``send(client_state, planned) -> status`` over the plan with CLIENTS threads; (seconds, outcomes)."""
    counter = itertools.count()
    outcomes: list[tuple[int, float, int]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker():
        state: dict = {}
        mine = []
        try:
            while True:
                index = next(counter)
                if index >= len(plan):
                    break
                started = time.perf_counter()
                status = send(state, plan[index])
                mine.append((index, (time.perf_counter() - started) * 1000, status))
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread below
            with lock:
                failures.append(error)
        finally:
            if state.get("close"):
                state["close"]()
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        # A client that crashed would silently shrink the run and flatter the figures.
        raise RuntimeError(f"{len(failures)} of {CLIENTS} clients failed") from failures[0]
    return time.perf_counter() - started, outcomes


def _check(plan: list[Planned], outcomes) -> dict:
    """Every slot won exactly once; everything else a 409."""
    winners: dict[int, int] = {}
    statuses: dict[int, int] = {}
    for index, _ms, status in outcomes:
        statuses[status] = statuses.get(status, 0) + 1
        if status == 201:
            winners[plan[index].slot] = winners.get(plan[index].slot, 0) + 1
    slots = {planned.slot for planned in plan}
    return {"statuses": statuses, "slots": len(slots), "slots_won_once": sum(1 for s in slots if winners.get(s) == 1),
            "slots_won_twice_or_more": sum(1 for s in slots if winners.get(s, 0) > 1)}


# --- the raw limit -----------------------------------------------------------------------------------

# One statement: lock the instrument row (as our path does, so racing inserts queue instead of
# deadlocking on the exclusion check), then insert against the same exclusion constraint.
RAW_INSERT = """
WITH locked AS (SELECT id FROM catalog_instrument WHERE id = %s FOR NO KEY UPDATE)
INSERT INTO bookings_booking (instrument_id, user_id, charged_lab_id, start, "end", blocked_until, state, purpose,
    is_internal, uid, sequence, created_at, updated_at, reason, late_cancellation, direction, flag)
SELECT locked.id, %s, NULL, %s, %s, %s, 'confirmed', %s, true, %s, 0, now(), now(), '', false, 'research', ''
FROM locked
"""


def raw_limit(ctx: Context, plan: list[Planned], user_ids: list[int]) -> tuple[float, list]:
    import psycopg
    from psycopg import errors

    def send(state, planned: Planned) -> int:
        if "conn" not in state:
            state["conn"] = psycopg.connect(ctx.conninfo, autocommit=True)
            state["close"] = state["conn"].close
        try:
            state["conn"].execute(RAW_INSERT, (
                planned.instrument_id, user_ids[planned.user_index], planned.start, planned.end,
                planned.end + dt.timedelta(minutes=planned.buffer_minutes), RAW_PURPOSE, uuid.uuid4()))
            return 201
        except (errors.ExclusionViolation, errors.DeadlockDetected):
            # Two racing inserts of overlapping rows can each wait on the other's exclusion check;
            # PostgreSQL then aborts one of them as a deadlock: that insert lost the slot, as with a
            # violation. (Our path locks the instrument row first, so its races end in the violation.)
            return 409

    return _run_clients(plan, send)


# --- through gunicorn ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(ctx: Context, *, workers: int | None = None) -> tuple[subprocess.Popen, int, Path]:
    port = _free_port()
    log = Path(ctx.output_dir) / f"gunicorn-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # The per-user booking limit (RATE_LIMIT_BOOKINGS, 60/min) would answer 429 to the plan's users
    # at full scale: this measures booking, not the limiter, so it is lifted for the run.
    env = {**os.environ, **ctx.env, "GUNICORN_BIND": f"127.0.0.1:{port}", "LOG_LEVEL": "WARNING",
           "RATE_LIMIT_BOOKINGS": "1000000/m"}
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "--access-logfile", "/dev/null", "instrumentshare.wsgi:application"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process, port, log
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"gunicorn did not answer /healthz in 60 s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def booking_sender(port: int, tokens: list[str], errors: dict, *, timeout: float = 30):
    """``send(state, planned) -> status``: one keep-alive connection per client thread; a status other
    than 201 or 409, or a broken connection, is counted in ``errors``."""

    def send(state, planned: Planned) -> int:
        if "conn" not in state:
            state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            state["close"] = state["conn"].close
        body = json.dumps({"instrument_id": planned.instrument_id, "start": planned.start.isoformat(),
                           "end": planned.end.isoformat(), "purpose": HTTP_PURPOSE})
        headers = {"Authorization": f"Bearer {tokens[planned.user_index]}", "Content-Type": "application/json"}
        try:
            state["conn"].request("POST", "/api/v1/bookings", body=body, headers=headers)
            response = state["conn"].getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            state["conn"].close()
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            return 0
        if response.status not in (201, 409):
            key = f"{response.status} {payload[:120].decode(errors='replace')}"
            errors[key] = errors.get(key, 0) + 1
        return response.status

    return send


def through_http(port: int, plan: list[Planned], tokens: list[str]) -> tuple[float, list, dict]:
    errors: dict[str, int] = {}
    seconds, outcomes = _run_clients(plan, booking_sender(port, tokens, errors))
    return seconds, outcomes, errors


def overlapping_pairs(instrument_ids: list[int]) -> int:
    """Pairs of active bookings of one instrument whose [start, blocked_until) overlap (any database)."""
    from bookings.models import Booking

    rows = (Booking.objects.filter(instrument_id__in=instrument_ids, state__in=ACTIVE_STATES)
            .order_by("instrument_id", "start").values_list("instrument_id", "start", "blocked_until"))
    overlaps, previous = 0, None
    for instrument_id, start, blocked_until in rows.iterator(chunk_size=5000):
        if previous and previous[0] == instrument_id and start < previous[1]:
            overlaps += 1
        if not previous or previous[0] != instrument_id or blocked_until > previous[1]:
            previous = (instrument_id, blocked_until)
    return overlaps


def _delete(purpose: str) -> int:
    from bookings.models import Booking

    deleted, _by_model = Booking.objects.filter(purpose=purpose).delete()
    return deleted


def run(ctx: Context) -> list[Result]:
    from django.db import connection

    now = dt.datetime.now(dt.UTC)
    instruments = _hot_instruments(ctx, ctx.size(smoke=5, quick=200, full=200))
    users = _bench_users(ctx, ctx.size(smoke=4, quick=40, full=40))
    # 2,400 requests: 300 per client, 24 beyond the 99th percentile; more only lengthened the run.
    requests = ctx.size(smoke=24, quick=1200, full=2400)
    plan = make_plan(ctx, instruments, len(users), requests, now)
    instrument_ids = [instrument.pk for instrument in instruments]
    details = {"requests": len(plan), "hot_instruments": len(instruments), "clients": CLIENTS,
               "colliding_requests": len(plan) - len({p.slot for p in plan})}
    raw_rate = None
    if ctx.postgres:
        raw_seconds, raw_outcomes = raw_limit(ctx, plan, [user_id for user_id, _token in users])
        raw_check = _check(plan, raw_outcomes)
        raw_rate = raw_check["statuses"].get(201, 0) / raw_seconds
        raw_latencies = [ms for _i, ms, _s in raw_outcomes]
        details["raw"] = {**raw_check, "seconds": raw_seconds, "p99_ms": percentile(raw_latencies, 99)}
        details["raw"]["deleted_afterwards"] = _delete(RAW_PURPOSE)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE bookings_booking")
    connection.close()  # gunicorn's workers and this process must not share a connection
    process, port, log = start_gunicorn(ctx, workers=2 if ctx.scale == "smoke" else None)
    try:
        wait_until_idle(process.pid)  # every worker started, not just the one that answered /healthz
        # Warm up each worker (imports, connection, URL resolver) on a read.
        for _ in range(10):
            warm = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            warm.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {users[0][1]}"})
            warm.getresponse().read()
        seconds, outcomes, errors = through_http(port, plan, [token for _user_id, token in users])
    finally:
        stop(process)
    check = _check(plan, outcomes)
    latencies = [ms for _i, ms, _s in outcomes]
    created = check["statuses"].get(201, 0)
    rate, p99 = created / seconds, percentile(latencies, 99)
    overlaps = overlapping_pairs(instrument_ids)
    correct = check["slots_won_once"] == check["slots"] and not check["slots_won_twice_or_more"] and not errors
    details.update({**check, "seconds": seconds, "p50_ms": percentile(latencies, 50), "errors": errors,
                    "requests_per_second": len(outcomes) / seconds, "gunicorn_workers": _workers(log),
                    "every_slot_won_exactly_once": correct})
    details["deleted_afterwards"] = _delete(HTTP_PURPOSE)
    met_rate = rate >= 300 and (raw_rate is None or rate >= 0.15 * raw_rate)
    return [
        Result(FIGURE + ": bookings/s", rate, "/s", raw=raw_rate, target="≥ 300/s; ≥ 0.15 of raw", met=met_rate,
               better="higher", details=details),
        Result(FIGURE + ": p99 latency", p99, "ms", raw=details.get("raw", {}).get("p99_ms"), target="≤ 100 ms",
               met=p99 <= 100),
        Result(FIGURE + ": overlapping active rows", overlaps, "", target="0, every slot won once",
               met=overlaps == 0 and correct, note="" if correct else "a slot was not won exactly once"),
    ]


def _workers(log: Path) -> str:
    return os.environ.get("WEB_CONCURRENCY") or f"default (2 × CPUs + 1 = {2 * len(os.sched_getaffinity(0)) + 1})"
