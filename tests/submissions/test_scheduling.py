"""Scheduled sample work holds instrument time exactly as a booking does: bookings cannot overlap it,
it cannot overlap bookings, and racing the two never gives an overlap (SQLite here; PostgreSQL in
tests/with_postgres.py, where the exclusion constraint decides)."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from bookings.models import Booking
from instrumentshare.accounts import services as account_services
from submissions import services
from tests.bookings.conftest import make_instrument, next_weekday
from tests.conftest import requires_postgres


def _received(world, instrument):
    analyses = list(instrument.analyses.values_list("pk", flat=True))
    request = services.create_request(user=world.researcher, instrument_id=instrument.pk, sample_count=3,
                                      sample_type="powder", sample_state="powder", analysis_ids=analyses)
    services.quote_request(actor=world.manager, request_id=request.pk, valid_until=dt.date.today() + dt.timedelta(9),
                           items=[services.ItemIn("Phase analysis", 3, Decimal("200.00"))])
    services.accept_quote(actor=world.researcher, request_id=request.pk)
    return services.receive_samples(actor=world.manager, request_id=request.pk)


@pytest.fixture
def mixed_instrument(world):
    """Bookable by time, and its lab also runs samples sent in."""
    instrument = make_instrument(world, name="透射电镜")
    services.add_analysis(actor=world.manager, instrument_id=instrument.pk, code="TEM", name_zh="形貌",
                          price_per_sample=Decimal("300"))
    return instrument


@pytest.mark.django_db
def test_scheduled_work_blocks_bookings_and_bookings_block_it(world, api_as, mixed_instrument):
    request = _received(world, mixed_instrument)
    start = next_weekday(1, 10)
    lab, researcher = api_as(world.manager), api_as(world.other_researcher)
    scheduled = lab.post(f"/submissions/{request.pk}/schedule",
                         {"start": start.isoformat(), "end": (start + dt.timedelta(hours=2)).isoformat()})
    assert scheduled.status_code == 200 and scheduled.json()["state"] == "scheduled"
    held = Booking.objects.get(instrument=mixed_instrument, state="held")
    assert (held.start, held.end) == (start, start + dt.timedelta(hours=2))
    overlapping = researcher.post("/bookings", {"instrument_id": mixed_instrument.pk, "purpose": "imaging",
                                                "start": (start + dt.timedelta(hours=1)).isoformat(),
                                                "end": (start + dt.timedelta(hours=3)).isoformat()})
    assert overlapping.status_code == 409 and overlapping.json()["code"] == "slot_taken"
    free = api_as(world.researcher).get(f"/instruments/{mixed_instrument.pk}/availability?start="
                                        f"{start.isoformat().replace('+', '%2B')}&end="
                                        f"{(start + dt.timedelta(hours=4)).isoformat().replace('+', '%2B')}")
    assert free.status_code == 200, free.json()
    busy = [(dt.datetime.fromisoformat(i["start"]), dt.datetime.fromisoformat(i["end"])) for i in free.json()["busy"]]
    assert (start, start + dt.timedelta(hours=2)) in busy
    assert all(not (a < start + dt.timedelta(hours=2) and start < b)
               for a, b in ((dt.datetime.fromisoformat(i["start"]), dt.datetime.fromisoformat(i["end"]))
                            for i in free.json()["free"]))
    # A booking made first refuses the work over it; moving the work elsewhere releases the old hold.
    later = start + dt.timedelta(hours=4)
    booked = researcher.post("/bookings", {"instrument_id": mixed_instrument.pk, "purpose": "imaging",
                                           "start": later.isoformat(),
                                           "end": (later + dt.timedelta(hours=1)).isoformat()})
    assert booked.status_code == 201, booked.json()
    refused = lab.post(f"/submissions/{request.pk}/schedule",
                       {"start": later.isoformat(), "end": (later + dt.timedelta(hours=2)).isoformat()})
    assert refused.status_code == 409 and refused.json()["code"] == "slot_taken"
    assert Booking.objects.get(pk=held.pk).state == "held"   # the refused move kept the old hold
    moved = lab.post(f"/submissions/{request.pk}/schedule", {
        "start": (start - dt.timedelta(hours=2)).isoformat(), "end": start.isoformat()})
    assert moved.status_code == 200
    assert Booking.objects.get(pk=held.pk).state == "cancelled"
    assert Booking.objects.filter(instrument=mixed_instrument, state="held").count() == 1
    # Cancelling the request frees its time.
    lab.post(f"/submissions/{request.pk}/cancel", {"reason": "instrument fault"})
    assert not Booking.objects.filter(instrument=mixed_instrument, state="held").exists()


@pytest.mark.django_db
def test_only_the_lab_schedules(world, api_as, mixed_instrument):
    request = _received(world, mixed_instrument)
    start = next_weekday(1, 10)
    body = {"start": start.isoformat(), "end": (start + dt.timedelta(hours=2)).isoformat()}
    assert api_as(world.researcher).post(f"/submissions/{request.pk}/schedule", body).status_code == 403
    naive = api_as(world.manager).post(f"/submissions/{request.pk}/schedule",
                                       {"start": "2030-01-01T10:00:00", "end": "2030-01-01T12:00:00"})
    assert naive.status_code == 422 and naive.json()["code"] == "naive_datetime"


N = 6


@pytest.mark.django_db(transaction=True)
def test_scheduling_races_with_bookings_without_overlap(world):
    """One lab manager schedules the work while five researchers book the same two hours: one wins."""
    _race(world)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_scheduling_races_with_bookings_without_overlap_on_postgresql(world):
    """The same race where the exclusion constraint, not a serialized writer, decides."""
    _race(world)


def _race(world):
    instrument = make_instrument(world, name="透射电镜")
    services.add_analysis(actor=world.manager, instrument_id=instrument.pk, code="TEM", name_zh="形貌")
    request = _received(world, instrument)
    start = next_weekday(2, 9)
    window = {"start": start.isoformat(), "end": (start + dt.timedelta(hours=2)).isoformat()}
    users = [account_services.create_user(actor=None, username=f"racer{i}", password="x" * 12,
                                          organization=world.org_b) for i in range(N - 1)]
    tokens = [account_services.create_api_token(user=user, name="race")[1] for user in users]
    lab_token = account_services.create_api_token(user=world.manager, name="race")[1]
    calls = [(f"/api/v1/submissions/{request.pk}/schedule", window, lab_token)] + [
        ("/api/v1/bookings", {"instrument_id": instrument.pk, "purpose": "race", **window}, token) for token in tokens]
    barrier = threading.Barrier(N)
    outcomes: list[tuple[str, int]] = []
    lock = threading.Lock()

    def fire(path: str, body: dict, token: str):
        try:
            barrier.wait(10)
            response = Client().post(path, body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {token}"})
            with lock:
                outcomes.append((path, response.status_code))
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(status for _path, status in outcomes)
    assert len(statuses) == N and statuses.count(409) == N - 1, outcomes
    assert statuses.count(200) + statuses.count(201) == 1, outcomes
    active = Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES)
    assert active.count() == 1
