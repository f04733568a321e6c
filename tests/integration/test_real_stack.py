"""The real stack, through HTTP alone: gunicorn, a Celery worker and beat on Redis, PostgreSQL,
and a local SMTP server. Log in, book, receive the invitation, check in and out; the beat
reconciles last month's use; finance closes the month and exports the bill."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from tests.bookings.conftest import make_instrument
from tests.conftest import PASSWORD, database_url_for_subprocess, requires_postgres, requires_redis

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check, timeout=60, every=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@requires_postgres
@requires_redis
@pytest.mark.celery_worker
@pytest.mark.real_password_hashing  # gunicorn verifies the passwords with the real (Argon2) hasher
def test_the_whole_loop_through_http(world, start_worker, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from billing import services as billing
    from bookings.services import create_booking
    from usage.models import UsageSession

    # Data a lab would have: a 24/7 instrument with prices, an account, and last month's use.
    instrument = make_instrument(world, hours=[(d, 0, 1440) for d in range(7)],
                                 policy={"slot_minutes": 5, "min_minutes": 5, "min_notice_minutes": 0})
    billing.create_rate_card(actor=None, instrument_id=instrument.pk, valid_from=dt.date(2020, 1, 1),
                             rates=[{"user_class": "internal", "unit": "hour", "price": "120.00"},
                                    {"user_class": "academic", "unit": "hour", "price": "240.00"},
                                    {"user_class": "industry", "unit": "hour", "price": "360.00"}])
    billing.create_account(actor=world.finance, kind="cost_centre", organization=world.org_a, lab=world.lab_a,
                           number="CC-A-1", name="Lab A")
    first_of_month = timezone.localtime().date().replace(day=1)
    last_month = (first_of_month - dt.timedelta(days=1)).replace(day=10)
    past = dt.datetime.combine(last_month, dt.time(9), tzinfo=instrument.zone)
    old = create_booking(user=world.researcher, instrument_id=instrument.pk, start=past,
                         end=past + dt.timedelta(hours=2), purpose="last month", now=past - dt.timedelta(days=1))
    UsageSession.objects.create(instrument=instrument, user=world.researcher, source="logger", external_ref="old",
                                start=past, end=past + dt.timedelta(hours=2))

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    smtp_port, web_port = _free_port(), _free_port()
    smtp = Controller(Collect(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
           "RECONCILE_EVERY_SECONDS": "3", "RECONCILE_WINDOW_DAYS": "62", "SITE_URL": f"http://127.0.0.1:{web_port}"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    processes = []
    try:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "instrumentshare.wsgi:application", "-b",
                                f"127.0.0.1:{web_port}", "-w", "2", "--timeout", "60"], cwd=ROOT, env=env,
                               stdout=open(tmp_path / "web.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        processes.append(web)
        start_worker(queue="celery", extra_env=env)
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "instrumentshare", "beat", "-s",
                                 str(tmp_path / "beat-schedule"), "-l", "info"], cwd=ROOT, env=env,
                                stdout=open(tmp_path / "beat.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        processes.append(beat)
        base = f"http://127.0.0.1:{web_port}"
        _wait_for(lambda: _up(base), what="gunicorn")

        def token_for(username):
            response = requests.post(f"{base}/api/v1/auth/token", json={"username": username, "password": PASSWORD},
                                     timeout=10)
            assert response.status_code == 201, response.text
            return {"Authorization": f"Bearer {response.json()['token']}"}

        researcher = token_for("researcher")
        now = timezone.now()
        start = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=5 - now.minute % 5)
        booking = requests.post(f"{base}/api/v1/bookings", headers=researcher, timeout=10, json={
            "instrument_id": instrument.pk, "start": start.isoformat(),
            "end": (start + dt.timedelta(minutes=30)).isoformat(), "purpose": "end-to-end"})
        assert booking.status_code == 201, booking.text
        booking_id = booking.json()["id"]
        invitation = _wait_for(lambda: received, timeout=60, what="the invitation e-mail")[0]
        parts = [p for p in invitation.walk() if p.get_content_type() == "text/calendar"]
        assert parts and parts[0].get_param("method") == "REQUEST"
        assert requests.post(f"{base}/api/v1/bookings/{booking_id}/check-in", headers=researcher,
                             timeout=10).status_code == 200
        assert requests.post(f"{base}/api/v1/bookings/{booking_id}/check-out", headers=researcher, json={"samples": 1},
                             timeout=10).status_code == 200
        # The beat runs reconciliation (every 3 s here): last month's booking is completed and billable.
        from bookings.models import Booking

        _wait_for(lambda: Booking.objects.get(pk=old.pk).state == "completed", timeout=90, what="reconciliation")
        finance = token_for("finance")
        month = last_month.strftime("%Y-%m")
        period = requests.post(f"{base}/api/v1/billing/periods", headers=finance, timeout=10,
                               json={"organization_id": world.org_a.pk, "month": month})
        assert period.status_code == 202, period.text
        period_id = period.json()["id"]
        _wait_for(lambda: requests.get(f"{base}/api/v1/billing/periods/{period_id}", headers=finance,
                                       timeout=10).json()["state"] == "closed", timeout=120, what="the period close")
        export = requests.get(f"{base}/api/v1/billing/export", headers=finance, timeout=30,
                              params={"period": month, "format": "csv"})
        assert export.status_code == 200
        text = export.content.decode("utf-8-sig")
        assert "240.00" in text or "240" in text, text[:500]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        smtp.stop()


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=5).ok
    except requests.RequestException:
        return False
