"""Many concurrent requests for one slot, through HTTP, on the real database: exactly one wins."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client

from bookings.models import Booking
from instrumentshare.accounts import services as account_services
from tests.bookings.conftest import make_instrument, next_weekday

N = 8


@pytest.mark.django_db(transaction=True)
def test_parallel_requests_for_one_slot_make_exactly_one_booking(world):
    instrument = make_instrument(world)
    start = next_weekday(2, 9)
    body = {"instrument_id": instrument.pk, "start": start.isoformat(),
            "end": (start + dt.timedelta(hours=2)).isoformat(), "purpose": "race"}
    users = [account_services.create_user(actor=None, username=f"racer{i}", password="x" * 12,
                                          organization=world.org_b) for i in range(N)]
    tokens = [account_services.create_api_token(user=user, name="race")[1] for user in users]
    barrier = threading.Barrier(N)
    statuses: list[int] = []
    bodies: list[dict] = []
    lock = threading.Lock()

    def fire(token: str):
        client = Client()
        try:
            barrier.wait(10)
            response = client.post("/api/v1/bookings", body, content_type="application/json",
                                    headers={"Authorization": f"Bearer {token}"})
            with lock:
                statuses.append(response.status_code)
                bodies.append(response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201] + [409] * (N - 1), bodies
    assert all(b["code"] == "slot_taken" and b["conflict"]["start"] for b in bodies if "code" in b)
    assert Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES).count() == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_overlapping_but_different_slots_never_overlap(world):
    """Shifted requests (10:00-12:00, 10:30-12:30, ...) race; whatever wins, no two active rows overlap."""
    instrument = make_instrument(world)
    base = next_weekday(3, 8)
    users = [account_services.create_user(actor=None, username=f"shift{i}", password="x" * 12,
                                          organization=world.org_a) for i in range(N)]
    tokens = [account_services.create_api_token(user=user, name="race")[1] for user in users]
    barrier = threading.Barrier(N)

    def fire(index: int, token: str):
        start = base + dt.timedelta(minutes=30 * index)
        try:
            barrier.wait(10)
            Client().post("/api/v1/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                               "end": (start + dt.timedelta(hours=2)).isoformat(), "purpose": "x"},
                          content_type="application/json", headers={"Authorization": f"Bearer {token}"})
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=(i, t)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    rows = list(Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES).order_by("start"))
    assert rows
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert earlier.blocked_until <= later.start
