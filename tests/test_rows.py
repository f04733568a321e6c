"""``instrumentshare.core.rows``: instances from hand-written SQL and inserts written once are the same
as the ORM's, on SQLite and PostgreSQL (the booking path relies on both; issue 21, part 2)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import signals

from billing.models import BillingAccount
from bookings.models import Booking, Notification
from catalog.models import BookingPolicy, Instrument
from instrumentshare.core import rows
from tests.bookings.conftest import make_instrument

pytestmark = pytest.mark.django_db


def _read(model, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {rows.columns(model, 't')} FROM {model._meta.db_table} t WHERE t.id = %s", [pk])  # noqa: S608
        return rows.from_row(model, cursor.fetchone())


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_rows_read_by_hand_equal_the_querysets_for_every_field_type(world):
    instrument = make_instrument(world, original_value=Decimal("1234567.89"))
    account = BillingAccount.objects.create(kind=BillingAccount.Kind.COST_CENTRE, organization=world.org_a,
                                            lab=world.lab_a, number="CC-1", name="成本中心",
                                            budget_cap=Decimal("500.50"), valid_from=dt.date(2026, 1, 1))
    for model, pk in ((Instrument, instrument.pk), (BookingPolicy, instrument.policy.pk), (BillingAccount, account.pk)):
        by_hand, by_orm = _read(model, pk), model.objects.get(pk=pk)
        assert _fields(by_hand) == _fields(by_orm)
        assert {type(value) for value in _fields(by_hand).values()} == {type(v) for v in _fields(by_orm).values()}
        assert by_hand._state.adding is False and by_hand._state.db == "default"
    assert _read(Instrument, instrument.pk).original_value == Decimal("1234567.89")


def test_a_null_primary_key_reads_as_none():
    width = rows.width(BookingPolicy)
    assert rows.from_row(BookingPolicy, (None,) * width) is None


def test_an_insert_written_once_stores_what_save_stores(world):
    instrument = make_instrument(world)
    start = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)
    fast = rows.insert(Booking(instrument=instrument, user=world.researcher, start=start,
                               end=start + dt.timedelta(hours=1), blocked_until=start + dt.timedelta(hours=1),
                               purpose="写入一次"))
    slow = Booking(instrument=instrument, user=world.researcher, start=start + dt.timedelta(hours=2),
                   end=start + dt.timedelta(hours=3), blocked_until=start + dt.timedelta(hours=3), purpose="save")
    slow.save()
    assert fast.pk and fast._state.adding is False
    stored, saved = Booking.objects.get(pk=fast.pk), Booking.objects.get(pk=slow.pk)
    different = {"id", "start", "end", "blocked_until", "purpose", "uid", "created_at", "updated_at"}
    assert {k: v for k, v in _fields(stored).items() if k not in different} == \
        {k: v for k, v in _fields(saved).items() if k not in different}
    assert stored.uid == fast.uid and stored.created_at == fast.created_at and stored.purpose == "写入一次"
    assert stored.state == Booking._meta.get_field("state").default   # the field's default, as save gives it
    notification = rows.insert(Notification(booking=fast, kind=Notification.Kind.INVITATION, sequence=0))
    assert Notification.objects.get(pk=notification.pk).booking_id == fast.pk


def test_an_insert_with_save_signals_listening_goes_through_save(world):
    instrument = make_instrument(world)
    heard = []

    def listener(sender, instance, created, **kwargs):
        heard.append((instance.pk, created))

    signals.post_save.connect(listener, sender=Notification)
    try:
        start = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)
        booking = rows.insert(Booking(instrument=instrument, user=world.researcher, start=start, end=start
                                      + dt.timedelta(hours=1), blocked_until=start + dt.timedelta(hours=1),
                                      purpose="x"))
        notification = rows.insert(Notification(booking=booking, kind=Notification.Kind.INVITATION, sequence=0))
    finally:
        signals.post_save.disconnect(listener, sender=Notification)
    assert heard == [(notification.pk, True)]


def test_an_id_beyond_64_bits_reads_no_row_and_the_api_answers_404(world, api_as):
    instrument = make_instrument(world)
    assert rows.one(f"SELECT id FROM {Instrument._meta.db_table} WHERE id = %s", [10 ** 23]) is None  # noqa: S608
    assert rows.one(f"SELECT id FROM {Instrument._meta.db_table} WHERE id = %s", [instrument.pk]) == (instrument.pk,)  # noqa: S608
    window = {"start": "2027-03-01T00:00:00+08:00", "end": "2027-03-02T00:00:00+08:00"}
    for huge in (2 ** 63, 10 ** 23):
        assert api_as(None).get(f"/instruments/{huge}/availability", window).status_code == 404
        booked = api_as(world.researcher).post("/bookings", {
            "instrument_id": huge, "start": "2027-03-01T09:00:00+08:00", "end": "2027-03-01T10:00:00+08:00",
            "purpose": "overflow"})
        assert booked.status_code in (404, 422), booked.content
