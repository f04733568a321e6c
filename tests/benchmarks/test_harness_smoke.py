"""The benchmark harness at a tiny scale on the test database, so it cannot rot.

Runs generate_city (a dozen instruments, a few weeks) and every benchmark once with the
smallest counts: gunicorn and the HTTP clients, the Celery worker and the SMTP server (with
Redis), the export subprocesses. The raw limits need PostgreSQL: on SQLite they are skipped,
and each result says so. The figures are not checked, only that every benchmark ran and the
correctness checks inside them held (every slot won once, no overlapping rows).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.benchmarks.harness import Context, table, write_json
from tests.benchmarks.runner import BENCHMARKS, DEFAULT_REDIS, conninfo, run_benchmarks
from tests.conftest import IS_POSTGRES, database_url_for_subprocess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def test_generate_city_refuses_a_database_with_people(world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="already holds"):
        call_command("generate_city", instruments=3, years=0.02)


def test_every_benchmark_runs_at_a_tiny_scale(tmp_path):
    from devtools.management.commands.generate_city import Command

    command = Command()
    call_command(command, instruments=12, years=0.1, busy_month=12, charges=400, seed=3)
    assert command.summary["rows"]["bookings.Booking"] > 0
    ctx = Context(
        scale="smoke", anchor=dt.datetime.fromisoformat(command.summary["anchor"]), postgres=IS_POSTGRES,
        # The worker must listen where this process's Celery app sends: the test's own Redis (on a
        # queue of its own); gunicorn's invitations go to the benchmarks' Redis database instead.
        conninfo=conninfo() if IS_POSTGRES else None, redis_url=settings.REDIS_URL or None,
        output_dir=tmp_path, seed=3,
        env={"DATABASE_URL": database_url_for_subprocess(),
             "REDIS_URL": DEFAULT_REDIS if settings.REDIS_URL else ""},
    )
    results = run_benchmarks(ctx, BENCHMARKS)
    print(table(results))
    failed = [result for result in results if result.note.startswith("failed")]
    assert not failed, [result.note for result in failed]
    by_figure = {result.figure: result for result in results}
    overlaps = by_figure["booking create (HTTP, gunicorn, 8 clients): overlapping active rows"]
    assert overlaps.value == 0 and overlaps.met, overlaps.note
    assert by_figure["booking create (HTTP, gunicorn, 8 clients): bookings/s"].details["every_slot_won_exactly_once"]
    if IS_POSTGRES:
        availability = by_figure["availability, one instrument, 4 weeks: p50 server time"]
        assert availability.raw and availability.details["answers_differing_from_raw"] == 0
        assert availability.details["failures"] == availability.details["no_day_stored_failures"] == 0
    else:
        assert any(result.note.startswith("skipped") or "raw limit skipped" in result.note for result in results)
    path = write_json(results, ctx=ctx, extra={"city": command.summary})
    assert path.exists()


def test_the_dense_scenario_runs_at_a_tiny_scale(tmp_path):
    """Three dense instruments over a few days: every figure of bench_dense is produced, no booking
    overlaps, every slot is won once. No timing is checked. On SQLite the raw limits and the database
    CPU are skipped (they need PostgreSQL), and each result says so."""
    from devtools.management.commands.generate_city import Command
    from tests.benchmarks import dense

    command = Command()
    call_command(command, instruments=8, years=0.05, busy_month=4, charges=100, seed=5)
    built = dense.build(3, days=4, feed_events=150, history_days=2, seed=5)
    assert built["bookings"] == 2 * 4 * 36 + 150 + 2 * 36  # the second instrument's two days of history
    assert dense.instrument_ids()
    ctx = Context(
        scale="smoke", anchor=dt.datetime.fromisoformat(command.summary["anchor"]), postgres=IS_POSTGRES,
        conninfo=conninfo() if IS_POSTGRES else None, redis_url=settings.REDIS_URL or None,
        output_dir=tmp_path, seed=5,
        env={"DATABASE_URL": database_url_for_subprocess(),
             "REDIS_URL": DEFAULT_REDIS if settings.REDIS_URL else ""},
    )
    results = run_benchmarks(ctx, ["dense"])
    print(table(results))
    failed = [result for result in results if result.note.startswith("failed")]
    assert not failed, [result.note for result in failed]
    by_figure = {result.figure: result for result in results}
    overlaps = by_figure["dense: booking create: overlapping active rows"]
    assert overlaps.value == 0 and overlaps.met, overlaps.note
    details = by_figure["dense: booking create, 1 client: p50"].details
    assert details["every_slot_won_exactly_once"], details
    assert details["one_client"]["statuses"] == {201: details["one_client_requests"]}
    assert details["warm_up_bookings"] == {201: 16}  # 4 per worker, booked before anything is measured
    assert by_figure["dense: machine speed: CPU for a fixed piece of Python (lower is faster)"].value > 0
    # The HTTP-created rows are gone before the raw runs book the same slots (at least one row each).
    assert details["rows_deleted_afterwards"] >= details["one_client_requests"] + details["eight_clients"]["slots"]
    availability = by_figure["dense: availability, one instrument, 4 weeks: p50"]
    assert availability.details["failures"] == 0
    history = by_figure["dense: availability, 4 weeks, an instrument with 72 past bookings: p50"]
    assert history.details["failures"] == 0 and history.details["history_bookings"] == 72
    assert by_figure["dense: free-between search, free ≥ 15 min in 7 days: p50"].details["count"] == 3
    assert any(result.figure.startswith("dense: public iCalendar feed, one instrument, 150 events")
               for result in results)
    assert by_figure["dense: availability, one instrument, 4 weeks: app CPU per request"].value is not None
    if IS_POSTGRES:
        assert availability.raw and availability.details["answers_differing_from_raw"] == 0
        assert availability.details["answers_differing_between_computed_and_stored"] == 0
        computed = by_figure["dense: availability, one instrument, 4 weeks, computed and stored (no stored day yet)"
                             ": p50"]
        assert computed.details["failures"] == 0
        assert details["raw"]["eight_clients"]["slots_won_once"] == details["raw"]["eight_clients"]["slots"]
    else:
        assert by_figure["dense: raw limits"].note.startswith("skipped")
    assert write_json(results, ctx=ctx, extra={"city": command.summary, "dense": built}).exists()
