"""A database of the release before "one house" upgrades with ``migrate`` and loses nothing.

The snapshots (``before-one-house.*.sql.gz``) are that release's schema and a little of everything,
made by its own test fixtures: people, an instrument with a rate card, a closed month with invoices
and vouchers, a booking charged to a named account, logger events and sessions, review flags. The
upgrade moves the usage tables into the usage app and the booking's account into billing's own
table; after it the ORM reads every row, nothing is left to migrate and the audit chain verifies.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import requires_postgres

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CHECK = """
from billing.models import BookingAccount, Charge
from bookings.models import Booking
from usage.models import BillableItem, LoggerToken, ReviewFlag, ServiceRecord, UsageEvent, UsageSession
link = BookingAccount.objects.get()
assert link.booking.purpose == "upgrade snapshot" and link.account.number == "CC-A-001", link
counts = [M.objects.count() for M in (UsageSession, UsageEvent, LoggerToken, BillableItem, ReviewFlag, ServiceRecord)]
assert counts == [3, 2, 1, 2, 1, 2], counts
assert all(c.item.session_id for c in Charge.objects.filter(kind="usage")), "charges lost their items"
assert Booking.objects.count() == 1
print("upgraded")
"""


def _manage(*args: str, database_url: str, var_dir: Path) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "INSTRUMENTSHARE_VAR_DIR": str(var_dir)}
    env.pop("REDIS_URL", None)
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def _upgrade_and_check(database_url: str, var_dir: Path) -> None:
    migrated = _manage("migrate", "--noinput", database_url=database_url, var_dir=var_dir)
    assert "Applying usage.0001_initial... OK" in migrated and "Applying billing.0004_booking_account... OK" in migrated
    assert "upgraded" in _manage("shell", "-c", CHECK, database_url=database_url, var_dir=var_dir)
    assert "No changes detected" in _manage("makemigrations", "--check", "--dry-run", database_url=database_url,
                                            var_dir=var_dir)
    _manage("verify_audit", database_url=database_url, var_dir=var_dir)


def test_a_sqlite_database_of_the_release_before_upgrades_without_loss(tmp_path):
    path = tmp_path / "before.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(gzip.open(HERE / "before-one-house.sqlite.sql.gz", "rt").read())
    _upgrade_and_check(f"sqlite:///{path}", tmp_path)
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in connection.execute("PRAGMA table_info(bookings_booking)")}
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {"usage_usagesession", "usage_billableitem", "billing_bookingaccount"} <= tables
    assert not {name for name in tables if name.startswith("bookings_") and "usage" in name}
    assert "account_id" not in columns


def _server() -> str:
    from django.conf import settings

    data = settings.DATABASES["default"]
    return f"postgres://{data.get('USER') or 'postgres'}@{data.get('HOST') or '127.0.0.1'}:{data.get('PORT') or 5432}"


@requires_postgres
@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql (Debian's postgresql-client)")
def test_a_postgresql_database_of_the_release_before_upgrades_without_loss(tmp_path):
    server, name = _server(), f"upgrade_{uuid.uuid4().hex[:10]}"
    psql = ["psql", f"{server}/postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    subprocess.run([*psql, "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    try:
        dump = gzip.open(HERE / "before-one-house.postgresql.sql.gz", "rb").read()
        subprocess.run(["psql", f"{server}/{name}", "-v", "ON_ERROR_STOP=1", "-q"], input=dump, check=True,
                       capture_output=True)
        _upgrade_and_check(f"{server}/{name}", tmp_path)
        columns = subprocess.run(["psql", f"{server}/{name}", "-Atc",
                                  "SELECT column_name FROM information_schema.columns "
                                  "WHERE table_name = 'bookings_booking'"], check=True, capture_output=True, text=True)
        assert "account_id" not in columns.stdout.split()
        overlap = subprocess.run(["psql", f"{server}/{name}", "-Atc",
                                  "SELECT count(*) FROM pg_constraint WHERE conname = 'booking_no_overlap'"],
                                 check=True, capture_output=True, text=True)
        assert overlap.stdout.strip() == "1"   # the guarantee against double booking survives the upgrade
    finally:
        subprocess.run([*psql, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], capture_output=True)
