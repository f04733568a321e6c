"""The mail server is down for longer than every retry schedule while a real worker sends
invitations, then comes back: every invitation arrives, once per revision, none abandoned (issue 18,
item 2: an invitation used to reach ``attempts=10`` and never be sent). The backoff is shortened
through the worker's environment; the test plays the beat by sending the sweep task to the worker."""

import collections
import time

import pytest
from aiosmtpd.controller import Controller

from bookings.models import Notification
from bookings.services import notifications
from bookings.tasks import sweep_outbox
from tests.bookings.test_invitations import _free_port, _pending_invitations
from tests.bookings.test_outbox_backoff import Keeping
from tests.conftest import requires_postgres

INVITATIONS = 4
OLD_CAP = 10  # the attempt count after which a row used to be abandoned
TASK_RETRIES = 2


def _sweep(queue: str) -> None:
    """What the beat does every minute, here as often as the test needs."""
    sweep_outbox.apply_async(kwargs={"older_than_seconds": 0}, queue=queue).get(timeout=60)


def _wait_for(check, *, queue: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        _sweep(queue)
        time.sleep(0.2)


@requires_postgres
@pytest.mark.celery_worker
def test_invitations_survive_a_long_smtp_outage_and_arrive_once(world, start_worker):
    from tests.bookings.conftest import make_instrument

    port = _free_port()  # nothing listens here yet: the mail server is down
    worker = start_worker(queue="celery", extra_env={
        "EMAIL_URL": f"smtp://127.0.0.1:{port}", "OUTBOX_BACKOFF_FIRST_SECONDS": "1",
        "OUTBOX_BACKOFF_CEILING_SECONDS": "2", "OUTBOX_TASK_RETRIES": str(TASK_RETRIES)})
    instrument = make_instrument(world)
    ids = _pending_invitations(world, instrument, count=INVITATIONS)  # each handed to the worker after commit
    assert len(ids) == INVITATIONS
    rows = Notification.objects.filter(pk__in=ids)

    # Down for longer than the task's own retries and the old cap: the rows wait, none is given up.
    _wait_for(lambda: min(rows.values_list("attempts", flat=True)) > OLD_CAP, queue=worker.queue, timeout=180,
              what=f"every invitation to be tried more than {OLD_CAP} times")
    assert set(rows.values_list("state", flat=True)) == {"pending"}
    assert "ServerUnavailable" in worker.log.read_text() or "Connection refused" in worker.log.read_text()

    handler = Keeping()
    server = Controller(handler, hostname="127.0.0.1", port=port)
    server.start()  # the mail server is back
    try:
        _wait_for(lambda: not rows.exclude(state="sent").exists(), queue=worker.queue, timeout=60,
                  what="every invitation to be sent")
        for _again in range(3):
            _sweep(worker.queue)
    finally:
        server.stop()

    received = collections.Counter(message["Message-ID"] for message in handler.messages)
    expected = {notifications.message_id(row) for row in rows}
    assert set(received) == expected and len(expected) == INVITATIONS
    assert set(received.values()) == {1}  # once per revision
    assert all(row.attempts > OLD_CAP and row.sent_at for row in rows)
