"""Backup and restore as the README documents it: pg_dump -Fc, pg_restore into an empty
database, and the restored trail verifies whole."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from bookings import services
from instrumentshare.audit.services import seal_pending
from tests.bookings.conftest import make_instrument, next_weekday
from tests.conftest import requires_postgres

ROOT = Path(__file__).resolve().parents[2]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_dump_restores_into_an_empty_database_with_its_audit_trail_whole(world, tmp_path):
    if not shutil.which("pg_dump") or not shutil.which("pg_restore"):
        pytest.skip("pg_dump/pg_restore are not installed")
    instrument = make_instrument(world)
    start = next_weekday(1, 10)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                            end=start.replace(hour=12), purpose="before the backup")
    seal_pending()
    data = connection.settings_dict
    common = ["-h", data.get("HOST") or "127.0.0.1", "-p", str(data.get("PORT") or 5432), "-U",
              data.get("USER") or "postgres"]
    dump = tmp_path / "instrumentshare.dump"
    subprocess.run(["pg_dump", "-Fc", "--no-owner", *common, "-f", str(dump), data["NAME"]], check=True, timeout=120)
    restored = f"restore_{uuid.uuid4().hex[:8]}"
    subprocess.run(["createdb", *common, restored], check=True, timeout=60)
    try:
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", *common, "-d", restored, str(dump)],
                       check=True, timeout=120)
        host = data.get("HOST") or "127.0.0.1"
        env = {**os.environ, "DATABASE_URL": f"postgres://{common[5]}@{host}:{common[3]}/{restored}"}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        verify = subprocess.run([sys.executable, "manage.py", "verify_audit"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stderr
        assert "audit trail whole" in verify.stdout
        count = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                                "from bookings.models import Booking; print(Booking.objects.count())"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert count.stdout.strip().splitlines()[-1] == "1"
        # the restored database still refuses to rewrite history
        refuse = subprocess.run(["psql", *common, "-d", restored, "-c", "DELETE FROM audit_auditevent"],
                                capture_output=True, text=True, timeout=60)
        assert refuse.returncode != 0 and "append-only" in refuse.stderr
    finally:
        subprocess.run(["dropdb", *common, "--if-exists", restored], timeout=60)
