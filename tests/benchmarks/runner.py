"""``python -m tests.benchmarks [--quick] [--scenario dense]``: build a city on PostgreSQL, run, print, save JSON.

By default it starts a PostgreSQL server of its own with ``deploy/postgresql.conf``
(``tests/benchmarks/pgserver.py``, data in ``var/bench/pgdata``, removed afterwards unless
``--reuse``); ``BENCH_DATABASE_URL`` names another server's database instead (never the one in
``DATABASE_URL``). It (re)creates the database ``bench``, migrates it and runs ``generate_city``
at the chosen scale; ``--reuse`` keeps a city generated earlier with the same parameters. Redis
is ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``, a database of its own, flushed
before and after).

``--scenario dense`` builds a small city (its people and labs) and then the dense calendars of
``tests/benchmarks/dense.py`` (200 instruments, 20 with ``--quick``, ``--instruments`` to choose),
and runs ``bench_dense`` over HTTP against gunicorn with CPU per request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

BENCHMARKS = ["booking_http", "availability", "search", "reconcile", "feed", "invitations", "export", "dashboard"]
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {"city": BENCHMARKS, "dense": ["dense"]}
# The small city under the dense instruments: people, labs and a few instruments of every kind.
DENSE_CITY = {"instruments": 60, "years": 0.1, "busy_month": 10, "charges": 2000}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="city",
                        help="city (default): every benchmark on a generated city; dense: 200 instruments each "
                             "booked 20 minutes of every 40 around the clock, over HTTP with CPU per request")
    parser.add_argument("--quick", action="store_true", help="the CI scale: 300 instruments, 3 months "
                                                             "(dense: 20 dense instruments)")
    parser.add_argument("--instruments", type=int, help="override the scale's instrument count (dense: the dense "
                                                        "instruments)")
    parser.add_argument("--years", type=float, help="override the scale's years of history")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="", help=f"comma separated, from: {', '.join(BENCHMARKS)} (city), "
                                                   "dense (dense)")
    parser.add_argument("--reuse", action="store_true", help="keep the city already in the bench database if "
                                                             "it was generated with the same parameters (and keep "
                                                             "the benchmarks' own server's data for the next run)")
    parser.add_argument("--output", default=str(ROOT / "var" / "bench"), help="where the JSON goes")
    return parser.parse_args(argv)


def _environment(database_url: str, redis_url: str) -> dict:
    """Production-like settings for this process and the servers it starts: DEBUG off, no HTTPS redirect."""
    return {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "instrumentshare.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-" + "k" * 60, "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
    }


def _admin_connection(database_url: str):
    import psycopg

    parts = urlsplit(database_url)
    return psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True)


def _marker(args: argparse.Namespace) -> dict:
    marker = {"instruments": args.instruments, "years": args.years, "quick": args.quick, "seed": args.seed}
    if args.scenario != "city":
        marker["scenario"] = args.scenario
    return marker


def prepare_database(database_url: str, args: argparse.Namespace) -> dict | None:
    """Create the bench database afresh (or keep it with --reuse). Returns the stored marker when reused."""
    name = urlsplit(database_url).path.lstrip("/")
    with _admin_connection(database_url) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                           [name]).fetchone()
        if row and args.reuse and row[0]:
            stored = json.loads(row[0])
            if stored.get("parameters") == _marker(args):
                return stored
        if row:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return None


def save_marker(database_url: str, marker: dict) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    with _admin_connection(database_url) as conn:
        text = json.dumps(marker).replace("'", "''")
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{text}'")


def conninfo() -> str:
    from django.db import connection

    data = connection.settings_dict
    parts = [f"dbname={data['NAME']}", f"host={data.get('HOST') or '127.0.0.1'}",
             f"port={data.get('PORT') or 5432}", f"user={data.get('USER') or 'postgres'}"]
    if data.get("PASSWORD"):
        parts.append(f"password={data['PASSWORD']}")
    return " ".join(parts)


def run_benchmarks(ctx, names: list[str]) -> list:
    from .harness import Result

    results: list[Result] = []
    for name in names:
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        started = time.monotonic()
        ctx.log(f"--- {name}")
        try:
            found = module.run(ctx)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            import traceback

            traceback.print_exc()
            found = [Result(figure=name, value=None, unit="", note=f"failed: {type(error).__name__}: {error}"[:200])]
        for result in found:
            result.details.setdefault("benchmark_seconds", round(time.monotonic() - started, 1))
            # The machine may be shared: the 1-minute load average says how much else was running.
            result.details.setdefault("load_average_1min", round(os.getloadavg()[0], 2))
        results.extend(found)
        from django.db import connection

        connection.close()  # each benchmark starts with a fresh connection
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.environ.get("BENCH_DATABASE_URL"):
        return run(args, os.environ["BENCH_DATABASE_URL"])
    from . import pgserver

    if pgserver.bindir() is None:
        print(f"no PostgreSQL server binaries here: using {DEFAULT_DATABASE}", file=sys.stderr)
        return run(args, DEFAULT_DATABASE)
    with pgserver.Server(ROOT / "var" / "bench" / "pgdata", reuse=args.reuse) as database_url:
        return run(args, database_url)


def run(args: argparse.Namespace, database_url: str) -> int:
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    env = _environment(database_url, redis_url)
    os.environ.update(env)
    available = SCENARIOS[args.scenario]
    names = [name for name in (args.only.split(",") if args.only else available) if name]
    unknown = set(names) - set(available)
    if unknown:
        print(f"unknown benchmarks: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.monotonic()
    reused = prepare_database(database_url, args)
    import django

    django.setup()
    from django.core.management import call_command

    from .harness import Context, table, write_json

    _flush_redis(redis_url)
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)  # pages render with the production manifest
    if reused:
        print(f"reusing the city in {database_url} (generated {reused['generated']})")
        anchor = dt.datetime.fromisoformat(reused["anchor"])
        generation = reused
        # The beat's daily task, as production runs it: the opening windows move on with the horizon.
        from catalog.windows import refresh_opening_windows

        print(f"opening windows refreshed: {refresh_opening_windows():,}")
    elif args.scenario == "dense":
        generation = _generate({"seed": args.seed, "scale": "quick", **DENSE_CITY})
        from . import dense

        count = args.instruments or (20 if args.quick else 200)
        generation["dense"] = dense.build(count, seed=args.seed)
        print(f"dense calendars: {generation['dense']['bookings']:,} bookings on {count} instruments in "
              f"{generation['dense']['seconds']} s")
        anchor = dt.datetime.fromisoformat(generation["anchor"])
        save_marker(database_url, {"parameters": _marker(args), "anchor": generation["anchor"],
                                   "generated": dt.datetime.now(dt.UTC).isoformat(), "rows": generation["rows"],
                                   "seconds": generation["seconds"], "dense": generation["dense"]})
    else:
        options = {"seed": args.seed, "scale": "quick" if args.quick else "full"}
        if args.instruments:
            options["instruments"] = args.instruments
        if args.years is not None:
            options["years"] = args.years
        generation = _generate(options)
        anchor = dt.datetime.fromisoformat(generation["anchor"])
        save_marker(database_url, {"parameters": _marker(args), "anchor": generation["anchor"],
                                   "generated": dt.datetime.now(dt.UTC).isoformat(), "rows": generation["rows"],
                                   "seconds": generation["seconds"]})
    ctx = Context(scale="quick" if args.quick else "full", anchor=anchor, postgres=True, conninfo=conninfo(),
                  redis_url=redis_url, output_dir=Path(args.output), seed=args.seed, env=env)
    results = run_benchmarks(ctx, names)
    _flush_redis(redis_url)
    print()
    print(table(results))
    path = write_json(results, ctx=ctx, extra={"scenario": args.scenario, "city": generation,
                                               "database": database_url.rsplit("@", 1)[-1],
                                               "total_seconds": round(time.monotonic() - started, 1)})
    print(f"\nwritten to {path} in {time.monotonic() - started:.0f} s")
    # A benchmark that crashed (not one that missed its target) fails the run, so the harness cannot
    # rot unnoticed in CI's quick run.
    crashed = [result.figure for result in results if result.note.startswith("failed")]
    if crashed:
        print(f"benchmarks that failed to run: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


def _generate(options: dict) -> dict:
    from django.core.management import call_command

    from devtools.management.commands.generate_city import Command

    command = Command()
    call_command(command, **options)
    return command.summary


def _flush_redis(redis_url: str) -> None:
    try:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    except Exception as error:  # noqa: BLE001 - Redis down: the benchmarks that need it say so
        print(f"Redis at {redis_url} did not answer ({error})", file=sys.stderr)
