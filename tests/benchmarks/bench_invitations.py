"""Invitations sent by one Celery worker to a local SMTP server (aiosmtpd), per second.

Outbox rows are written for upcoming bookings, a minute old as after a broker outage, and the
worker (``--pool=solo``, started with EMAIL_URL pointing at the local server, its own queue) is
given the ``sweep_outbox`` task the beat sends every minute: it sends them in batches over one
SMTP connection. The clock runs from the enqueue to the last message received. A second figure,
with no target, is the other way rows leave: one ``send_notification`` task per row, as each
booking enqueues after its commit.
The raw limit: one SELECT of the same rows, the same MIME messages (text + text/calendar)
built with the standard library and sent over one SMTP connection, and one UPDATE marking them sent.
"""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from email.message import EmailMessage
from pathlib import Path

from .harness import Context, Result, skipped

FIGURE = "invitations, one worker → local SMTP"
ROOT = Path(__file__).resolve().parents[2]


class Counter:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        self.last = 0.0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.count += 1
            self.last = time.perf_counter()
        return "250 OK"


def _smtp_server():
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, counter, port


def _outbox(count: int, *, age: dt.timedelta = dt.timedelta(0)) -> list[int]:
    from bookings.models import Booking, Notification

    bookings = list(Booking.objects.filter(state="confirmed", start__gt=dt.datetime.now(dt.UTC))
                    .exclude(notifications__kind="invitation").order_by("id").values_list("id", flat=True)[:count])
    created = dt.datetime.now(dt.UTC) - age
    Notification.objects.bulk_create([Notification(booking_id=pk, kind="invitation", sequence=0, created_at=created)
                                      for pk in bookings])
    return list(Notification.objects.filter(booking_id__in=bookings, kind="invitation", state="pending")
                .values_list("id", flat=True))


def _start_worker(ctx: Context, queue: str, email_url: str, log: Path) -> subprocess.Popen:
    from instrumentshare.celery import app

    env = {**os.environ, **ctx.env, "EMAIL_URL": email_url, "REDIS_URL": ctx.redis_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "instrumentshare", "worker", "--pool=solo", "-Q", queue, "-n",
         f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=1):
            return process
        if process.poll() is not None:
            break
    process.terminate()
    raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")


RAW_ROWS = """
SELECT n.id, b.uid, b.sequence, b.start, b."end", i.name_zh, u.email FROM bookings_notification n
JOIN bookings_booking b ON b.id = n.booking_id JOIN catalog_instrument i ON i.id = b.instrument_id
JOIN accounts_user u ON u.id = b.user_id WHERE n.id = ANY(%s)
"""


def raw_limit(ctx: Context, ids: list[int], port: int, counter: Counter) -> float:
    before = counter.count
    utc = "%Y%m%dT%H%M%SZ"
    with ctx.raw_connection() as conn:
        started = time.perf_counter()
        rows = conn.execute(RAW_ROWS, [ids]).fetchall()
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for _id, uid, sequence, start, end, name, email in rows:
                message = EmailMessage()
                message["Subject"] = f"预约确认 Booking confirmed: {name}"
                message["From"], message["To"] = "noreply@instrumentshare.local", email
                message.set_content(f"Your booking of {name} from {start:%Y-%m-%d %H:%M} to {end:%H:%M}.")
                ics = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:{uid}@instrumentshare"
                       f"\r\nSEQUENCE:{sequence}\r\nDTSTART:{start:{utc}}\r\nDTEND:{end:{utc}}\r\nSUMMARY:{name}\r\n"
                       "END:VEVENT\r\nEND:VCALENDAR\r\n")
                message.add_attachment(ics.encode(), maintype="text", subtype="calendar",
                                       params={"method": "REQUEST"}, filename="invite.ics")
                smtp.send_message(message)
        conn.execute("UPDATE bookings_notification SET state = 'sent', sent_at = now() WHERE id = ANY(%s)", [ids])
        seconds = time.perf_counter() - started
        conn.rollback()  # leave the rows pending for the worker
    assert counter.count - before == len(rows)
    return len(rows) / seconds


def _drain(counter: Counter, expected: int, before: int, started: float) -> tuple[int, float]:
    """Wait for ``expected`` more messages than ``before``; (received, seconds from ``started`` to the last one)."""
    deadline = time.monotonic() + max(120, expected)
    while counter.count - before < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    received = counter.count - before
    return received, (counter.last if received else time.perf_counter()) - started


def _enqueue(task: str, queue: str, *args) -> None:
    """To the broker, for the worker, even where tasks otherwise run eagerly (the test suite)."""
    from celery.exceptions import AlwaysEagerIgnored

    from instrumentshare.celery import app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlwaysEagerIgnored)
        app.send_task(task, args=args, queue=queue)


def _marked_sent(ids: list[int]) -> int:
    """Rows marked sent, once the worker's last commit (just after its last message) has landed."""
    from bookings.models import Notification

    deadline = time.monotonic() + 10
    while True:
        sent = Notification.objects.filter(pk__in=ids, state="sent").count()
        if sent == len(ids) or time.monotonic() > deadline:
            return sent
        time.sleep(0.1)


def run(ctx: Context) -> list[Result]:
    from bookings.models import Notification

    if not ctx.redis_url:
        return [skipped(FIGURE, "≥ 100/s", "needs Redis for a real worker (REDIS_URL)")]
    count = ctx.size(smoke=10, quick=500, full=1000)
    controller, counter, port = _smtp_server()
    # A minute old, as the sweep only takes rows whose own task had a minute to send them.
    ids = _outbox(count, age=dt.timedelta(minutes=2))
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    log = Path(ctx.output_dir) / f"worker-{queue}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = None
    task_ids: list[int] = []
    try:
        raw_rate = raw_limit(ctx, ids, port, counter) if ctx.postgres else None
        worker = _start_worker(ctx, queue, f"smtp://127.0.0.1:{port}", log)
        before = counter.count
        started = time.perf_counter()
        _enqueue("bookings.tasks.sweep_outbox", queue)
        received, seconds = _drain(counter, len(ids), before, started)
        sent = _marked_sent(ids)
        # The other way: one task per row, enqueued as fast as bookings would after their commits.
        task_ids = _outbox(max(count // 2, 1))  # a figure without a target: half the rows say as much
        before = counter.count
        started = time.perf_counter()
        for notification_id in task_ids:
            _enqueue("bookings.tasks.send_notification", queue, notification_id)
        task_received, task_seconds = _drain(counter, len(task_ids), before, started)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        controller.stop()
        task_sent = _marked_sent(task_ids) if task_ids else 0
        Notification.objects.filter(pk__in=[*ids, *task_ids]).delete()
    rate = received / seconds if seconds > 0 else 0.0
    task_rate = task_received / task_seconds if task_seconds > 0 else 0.0
    return [
        Result(f"{FIGURE} (outbox sweep)", rate, "/s", raw=raw_rate, target="≥ 100/s", met=rate >= 100,
               better="higher", details={"notifications": len(ids), "received": received, "marked_sent": sent,
                                         "seconds": seconds}),
        Result(f"{FIGURE} (a task per row)", task_rate, "/s", raw=raw_rate, better="higher",
               details={"notifications": len(task_ids), "received": task_received, "marked_sent": task_sent,
                        "seconds": task_seconds}),
    ]
