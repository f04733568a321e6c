"""``instrumentshare.core.rows``: instances from hand-written SQL and inserts written once are the same
as the ORM's, on SQLite and PostgreSQL (the booking path relies on both; issue 21, part 2)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, connection, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext

from billing.models import BillingAccount, BookingAccount
from bookings.models import Booking, Notification
from catalog.models import BookingPolicy, Instrument
from instrumentshare.core import rows
from tests.bookings.conftest import make_instrument
from tests.conftest import requires_postgres

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


def _booking(world, instrument, start, hours=1):
    return Booking(instrument=instrument, user=world.researcher, start=start, end=start + dt.timedelta(hours=hours),
                   blocked_until=start + dt.timedelta(hours=hours), purpose="x")


def test_a_one_to_one_key_is_inserted_as_given_without_save(world):
    instrument = make_instrument(world)
    account = BillingAccount.objects.create(kind=BillingAccount.Kind.COST_CENTRE, organization=world.org_a,
                                            lab=world.lab_a, number="CC-9", name="成本中心",
                                            valid_from=dt.date(2026, 1, 1))
    booking = rows.insert(_booking(world, instrument, dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)))
    with CaptureQueriesContext(connection) as queries:
        link = rows.insert(BookingAccount(booking=booking, account=account))
    (query,) = queries.captured_queries   # the statement written once (save's has no RETURNING for such a key)
    assert query["sql"].startswith("INSERT") and query["sql"].endswith('RETURNING "booking_id"')
    assert link.pk == booking.pk and link._state.adding is False
    assert BookingAccount.objects.get(pk=booking.pk).account_id == account.pk


def test_hot_statements_are_seen_by_query_capture(world):
    instrument = make_instrument(world)
    with CaptureQueriesContext(connection) as queries:
        assert rows.one(f"SELECT id FROM {Instrument._meta.db_table} WHERE id = %s", [instrument.pk]) == (  # noqa: S608
            instrument.pk,)
    assert len(queries) == 1


def _prepared(marker: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                       "WHERE statement LIKE %s AND statement NOT LIKE %s", [f"%{marker}%", "%pg_prepared_statements%"])
        return cursor.fetchall()


@requires_postgres
def test_on_postgresql_a_hot_statement_is_prepared_once_and_run_by_name(world):
    instrument = make_instrument(world)
    sql = f"SELECT id, 'prepared-marker' FROM {Instrument._meta.db_table} WHERE id = %s"  # noqa: S608
    for _ in range(3):
        assert rows.one(sql, [instrument.pk]) == (instrument.pk, "prepared-marker")
    assert rows.one(sql, [instrument.pk + 1000]) is None
    assert _prepared("prepared-marker") == [(4,)]   # one statement, planned or run four times


@requires_postgres
def test_on_postgresql_errors_of_prepared_statements_are_djangos_and_the_connection_goes_on(world):
    """The exclusion constraint's refusal is Django's IntegrityError (``create_booking`` answers 409 on it);
    a statement inside the broken transaction is refused as through Django's cursor (PostgreSQL's "current
    transaction is aborted", as Django's InternalError); after the rollback the prepared statements answer
    again."""
    instrument = make_instrument(world)
    start = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)
    rows.insert(_booking(world, instrument, start))
    with pytest.raises(IntegrityError, match="booking_no_overlap"), transaction.atomic():
        try:
            rows.insert(_booking(world, instrument, start + dt.timedelta(minutes=30)))
        finally:
            with pytest.raises(InternalError, match="aborted"):
                rows.one(f"SELECT id FROM {Instrument._meta.db_table} WHERE id = %s", [instrument.pk])  # noqa: S608
    assert rows.one(f"SELECT id FROM {Instrument._meta.db_table} WHERE id = %s", [instrument.pk]) == (  # noqa: S608
        instrument.pk,)
    later = rows.insert(_booking(world, instrument, start + dt.timedelta(hours=2)))
    assert Booking.objects.filter(instrument=instrument).count() == 2 and later.pk
