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


@pytest.mark.django_db(transaction=True)
def test_a_series_and_single_bookings_racing_for_overlapping_slots_never_overlap(world):
    """One weekly series of six and single bookings over each of its weeks (shifted by 30 minutes, and one
    exactly on it) race through HTTP: whoever wins each week, no two active rows overlap, every week is
    held by exactly one booking, and each loser hears 409 (the series: its lost weeks left out, or a 409)."""
    instrument = make_instrument(world)
    first = next_weekday(1, 10)
    weeks = 6
    users = [account_services.create_user(actor=None, username=f"mixed{i}", password="x" * 12,
                                          organization=world.org_b) for i in range(weeks + 1)]
    tokens = [account_services.create_api_token(user=user, name="race")[1] for user in users]
    barrier = threading.Barrier(weeks + 1)
    answers: list[tuple[str, int, dict]] = []
    lock = threading.Lock()
    series_body = {"instrument_id": instrument.pk, "start": first.isoformat(),
                   "end": (first + dt.timedelta(hours=2)).isoformat(), "purpose": "series", "frequency": "WEEKLY",
                   "count": weeks, "book_available": True}

    def fire(kind: str, token: str, path: str, body: dict):
        try:
            barrier.wait(10)
            response = Client().post(path, body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {token}"})
            with lock:
                answers.append((kind, response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=("series", tokens[0], "/api/v1/booking-series", series_body))]
    for week in range(weeks):
        start = first + dt.timedelta(weeks=week, minutes=0 if week == 0 else 30 * (week % 3))
        body = {"instrument_id": instrument.pk, "start": start.isoformat(),
                "end": (start + dt.timedelta(hours=2)).isoformat(), "purpose": "single"}
        threads.append(threading.Thread(target=fire, args=("single", tokens[week + 1], "/api/v1/bookings", body)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == weeks + 1, answers
    assert all(status in (200, 201, 409) for _kind, status, _body in answers), answers
    rows = list(Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES).order_by("start"))
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert earlier.blocked_until <= later.start
    assert len(rows) == weeks   # each week held once, by the series' occurrence or by the single booking
    singles_won = sum(1 for kind, status, _body in answers if kind == "single" and status == 201)
    series_rows = [row for row in rows if row.series_id is not None]
    assert len(series_rows) + singles_won == weeks
    (series_answer,) = [(status, body) for kind, status, body in answers if kind == "series"]
    if series_answer[0] == 201:
        lost = [o for o in series_answer[1]["occurrences"] if not o["ok"]]
        assert len(lost) == singles_won and {o["code"] for o in lost} <= {"slot_taken"}
    else:
        assert series_answer[1]["code"] == "series_conflicts" and singles_won == weeks
