"""The lean booking path (issue 21, part 2): fewer statements, every guarantee kept.

The instrument's lock reads the user's memberships and credit; the default account is one statement;
the audit's first event writes its stream in the same statement (PostgreSQL); the answer's account
is not read back; invitations are woken by one task per burst."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import BillingAccount, BookingAccount
from bookings import services
from bookings.models import Booking, Notification
from bookings.services import notifications
from instrumentshare.audit import services as audit
from instrumentshare.audit.models import AuditEvent, AuditStream
from instrumentshare.core.errors import Forbidden
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


def _cost_centre(world) -> BillingAccount:
    return BillingAccount.objects.create(kind=BillingAccount.Kind.COST_CENTRE, organization=world.org_a,
                                         lab=world.lab_a, number="CC-A", name="甲实验室成本中心")


def test_a_booking_is_seven_statements_on_postgresql_and_keeps_every_row(world, instrument):
    account = _cost_centre(world)
    start = next_weekday(1, 9)
    world.researcher.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                          end=start + dt.timedelta(hours=1), purpose="lean")
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]
    # Lock (with memberships and credit), default account, opening hours and downtime, the booking, its
    # account, the audit event (with its new stream), the outbox row. SQLite (no exclusion constraint:
    # the opening hours' statement reads the bookings near the time too) writes the new stream as a
    # statement of its own.
    assert len(statements) == (7 if connection.vendor == "postgresql" else 8), "\n".join(statements)
    assert "FOR NO KEY UPDATE" in statements[0] or connection.vendor != "postgresql"
    assert booking.part_facts == {"account_id": account.pk, "account": str(account)}
    assert BookingAccount.objects.get(booking=booking).account_id == account.pk
    assert Notification.objects.filter(booking=booking, kind="invitation").count() == 1
    event = AuditEvent.objects.get(target_type="bookings.booking", target_id=str(booking.pk))
    assert (event.seq, event.action, event.after["account_id"]) == (1, "booking.created_confirmed", account.pk)
    assert AuditStream.objects.get(key=f"bookings.booking:{booking.pk}").last_hash == event.hash
    assert audit.verify() is None


def test_the_api_answers_a_new_booking_as_it_answers_it_afterwards(world, instrument, api_as):
    _cost_centre(world)
    client = api_as(world.researcher)
    start = next_weekday(2, 10)
    created = client.post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                        "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "lean"})
    assert created.status_code == 201, created.content
    assert created.json() == client.get(f"/bookings/{created.json()['id']}").json()
    assert created.json()["account_id"] is not None


def test_a_booking_answer_is_every_field_of_its_schema_read_from_the_booking(world, instrument, api_as):
    """``BookingOut`` reads the booking into a dict itself (``fields_of``), not field by field through
    ninja's getter: a field added to the schema and not read there must fail here, not quietly answer
    its default."""
    from bookings.api import BookingOut

    client = api_as(world.researcher)
    start = next_weekday(2, 14)
    body = client.post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                     "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "fields"}).json()
    booking = Booking.objects.select_related("instrument").get(pk=body["id"])
    booking.part_facts = {"account_id": None}
    assert set(BookingOut.fields_of(booking)) == set(BookingOut.model_fields) == set(body)
    assert (body["instrument_id"], body["instrument_name_zh"], body["instrument_name_en"], body["time_zone"]) == (
        instrument.pk, instrument.name_zh, instrument.name_en, instrument.time_zone)
    assert (body["user_id"], body["charged_lab_id"], body["state"], body["purpose"], body["sequence"]) == (
        world.researcher.pk, booking.charged_lab_id, booking.state, "fields", booking.sequence)
    assert dt.datetime.fromisoformat(body["start"]) == start


def test_a_first_event_for_a_stream_that_exists_is_chained_after_it(world, instrument):
    start = next_weekday(3, 9)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="chain")
    again = audit.record(actor=world.researcher, action="test.again", target=booking, after={"n": 2},
                         new_target=True)
    assert again.seq == 2 and again.prev_hash == AuditEvent.objects.get(
        stream_key=f"bookings.booking:{booking.pk}", seq=1).hash
    assert AuditEvent.objects.filter(stream_key=f"bookings.booking:{booking.pk}").count() == 2
    assert audit.verify() is None


def test_credit_read_with_the_lock_refuses_a_banned_user(world, instrument, settings):
    from bookings.models import UserCredit

    UserCredit.objects.update_or_create(user=world.researcher, defaults={"score": settings.CREDIT_MIN_TO_BOOK - 1})
    start = next_weekday(1, 14)
    with pytest.raises(Forbidden) as refused:
        services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                end=start + dt.timedelta(hours=1), purpose="banned")
    assert refused.value.code == "credit_too_low"
    assert not Booking.objects.filter(purpose="banned").exists()


def test_a_burst_of_bookings_queues_one_outbox_task_and_the_task_lets_the_next_burst_queue(
        world, instrument, monkeypatch, django_capture_on_commit_callbacks):
    from bookings import tasks

    queued = []
    monkeypatch.setattr(tasks.send_outbox, "apply_async", lambda *a, **k: queued.append(k))
    for n in range(3):
        start = next_weekday(n, 9)
        with django_capture_on_commit_callbacks(execute=True):
            services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                    end=start + dt.timedelta(hours=1), purpose=f"burst {n}")
    assert len(queued) == 1   # the first commit queued it; the others found it queued and not yet started
    assert Notification.objects.filter(state="pending").count() == 3
    monkeypatch.undo()
    assert notifications.send_woken() == 3   # the task: every due row, over one connection
    assert len(mail.outbox) == 3 and cache.get(notifications.WAKE_KEY) is None
    start = next_weekday(4, 9)
    queued.clear()
    monkeypatch.setattr(tasks.send_outbox, "apply_async", lambda *a, **k: queued.append(k))
    with django_capture_on_commit_callbacks(execute=True):
        services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                end=start + dt.timedelta(hours=1), purpose="next burst")
    assert len(queued) == 1   # the sweep had started: the next commit wakes it again


def test_a_broker_that_is_down_leaves_the_rows_for_the_beat_and_the_next_commit_tries_again(
        world, instrument, monkeypatch, django_capture_on_commit_callbacks, caplog):
    from bookings import tasks

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.send_outbox, "apply_async", down)
    start = next_weekday(1, 9)
    with django_capture_on_commit_callbacks(execute=True):
        services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                end=start + dt.timedelta(hours=1), purpose="broker down")
    assert "could not queue the outbox sweep" in caplog.text
    assert cache.get(notifications.WAKE_KEY) is None   # not left set: the next commit queues again
    assert Notification.objects.get(booking__purpose="broker down").state == "pending"
