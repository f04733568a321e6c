"""The waiting list through the API, and its races on the real database: an offer and a normal booking, or
two offer runs, never give one slot to two people."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client

from bookings import services
from bookings.models import Booking, WaitlistEntry
from bookings.services import waitlist
from instrumentshare.accounts import services as account_services
from tests.bookings.conftest import make_instrument, next_weekday

State = WaitlistEntry.State


def _body(instrument, start, end, **extra):
    return {"instrument_id": instrument.pk, "start": start.isoformat(), "end": end.isoformat(),
            "purpose": "waiting for it", **extra}


@pytest.mark.django_db
def test_a_researcher_joins_is_offered_accepts_and_sees_the_entry_through_the_api(
        world, api_as, instrument, slot, django_capture_on_commit_callbacks):
    api = api_as(world.researcher)
    taken = services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=slot[0],
                                    end=slot[1], purpose="theirs")
    joined = api.post("/waitlist", _body(instrument, *slot))
    assert joined.status_code == 201, joined.json()
    entry = joined.json()
    assert entry["state"] == "waiting" and entry["minutes"] == 120 and entry["time_zone"] == "Asia/Shanghai"
    assert api_as(world.other_researcher).get(f"/waitlist/{entry['id']}").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as(world.other_researcher).post(f"/bookings/{taken.pk}/cancel").status_code == 200
    offered = api.get(f"/waitlist/{entry['id']}").json()
    assert offered["state"] == "offered" and offered["offer_expires_at"]
    assert dt.datetime.fromisoformat(offered["offer_start"]) == slot[0]
    assert api_as(world.other_researcher).post(f"/waitlist/{entry['id']}/accept").status_code == 404
    accepted = api.post(f"/waitlist/{entry['id']}/accept")
    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["state"] == "confirmed" and accepted.json()["user_id"] == world.researcher.pk
    listed = api.get("/waitlist").json()
    assert [(row["id"], row["state"], row["booking_id"]) for row in listed] == \
        [(entry["id"], "booked", accepted.json()["id"])]
    again = api.post(f"/waitlist/{entry['id']}/decline")
    assert again.status_code == 409 and again.json()["code"] == "no_offer"


@pytest.mark.django_db
def test_bad_waiting_list_input_is_a_4xx_naming_the_field_or_the_rule(world, api_as, instrument, slot):
    api = api_as(world.researcher)
    services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=slot[0], end=slot[1],
                            purpose="theirs")
    for extra, field in (({"minutes": 0}, "minutes"), ({"minutes": True}, "minutes"), ({"state": "offered"}, "state"),
                         ({"start": "0001-01-01T00:00:00+08:00"}, "start")):
        response = api.post("/waitlist", {**_body(instrument, *slot), **extra})
        assert response.status_code == 422, (extra, response.json())
        assert field in str(response.json()), (extra, response.json())
    naive = api.post("/waitlist", {**_body(instrument, *slot), "start": slot[0].replace(tzinfo=None).isoformat()})
    assert naive.status_code == 422 and naive.json()["code"] == "naive_datetime"
    free = api.post("/waitlist", _body(instrument, slot[0] + dt.timedelta(days=1), slot[1] + dt.timedelta(days=1)))
    assert free.status_code == 409 and free.json()["code"] == "time_free" and free.json()["free"]["start"]
    assert api.post("/waitlist", _body(instrument, *slot)).status_code == 201
    twice = api.post("/waitlist", _body(instrument, *slot))
    assert twice.status_code == 409 and twice.json()["code"] == "already_waiting"
    assert api.post("/waitlist/999999/leave").status_code == 404


@pytest.mark.django_db
def test_leaving_through_the_api_ends_the_entry(world, api_as, instrument, slot):
    api = api_as(world.researcher)
    services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=slot[0], end=slot[1],
                            purpose="theirs")
    entry = api.post("/waitlist", _body(instrument, *slot)).json()
    left = api.post(f"/waitlist/{entry['id']}/leave")
    assert left.status_code == 200 and left.json()["state"] == "left"


# --- races on the real database -------------------------------------------------------------------


def _racer(world, name: str):
    user = account_services.create_user(actor=None, username=name, password="x" * 12, email=f"{name}@example.org",
                                        organization=world.org_b)
    return user, account_services.create_api_token(user=user, name="race")[1]


def _fire_together(calls):
    """Run the (path, body, token) requests at once; their (status, body) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def fire(index, path, body, token):
        try:
            barrier.wait(10)
            response = Client().post(path, body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {token}"})
            results[index] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=fire, args=(index, *call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_an_accept_racing_a_normal_booking_ends_in_one_booking_and_a_clear_409(world):
    instrument = make_instrument(world)
    waiting, waiting_token = _racer(world, "waiting")
    holder, _ = _racer(world, "holder")
    rival, rival_token = _racer(world, "rival")
    for round_ in range(3):
        start = next_weekday(round_, 10)
        end = start + dt.timedelta(hours=2)
        taken = services.create_booking(user=holder, instrument_id=instrument.pk, start=start, end=end, purpose="x")
        entry = services.join_waitlist(user=waiting, instrument_id=instrument.pk, start=start, end=end, purpose="w")
        services.cancel_booking(actor=holder, booking_id=taken.pk)   # commits: the offer follows at once
        entry.refresh_from_db()
        assert entry.state == State.OFFERED
        accept = (f"/api/v1/waitlist/{entry.pk}/accept", {}, waiting_token)
        book = ("/api/v1/bookings", _body(instrument, start, end), rival_token)
        calls = [accept, book] if round_ % 2 else [book, accept]
        results = _fire_together(calls)
        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 409], results
        refused = next(body for status, body in results if status == 409)
        assert refused["code"] == "slot_taken" and refused["detail"], refused
        active = Booking.objects.filter(instrument=instrument, start=start, state__in=Booking.ACTIVE_STATES)
        assert [(row.user_id, row.state) for row in active] == [(waiting.pk, Booking.State.CONFIRMED)]


@pytest.mark.django_db(transaction=True)
def test_offer_runs_racing_for_one_freed_slot_never_give_it_to_two_people(world):
    instrument = make_instrument(world)
    start = next_weekday(2, 10)
    end = start + dt.timedelta(hours=2)
    # The only free time on Wednesday is 10:00-12:00; everyone waits for it, exactly or as "any 2 h that day".
    day = next_weekday(2, 8)
    holder, _ = _racer(world, "holder")
    for hours in ((8, 10), (12, 14), (14, 16), (16, 18)):
        services.create_booking(user=holder, instrument_id=instrument.pk, start=day.replace(hour=hours[0]),
                                end=day.replace(hour=hours[1]), purpose="x")
    for index in range(6):
        user, _ = _racer(world, f"waiting{index}")
        window = (start, end) if index % 2 else (day, day.replace(hour=18))
        WaitlistEntry.objects.create(user=user, instrument=instrument, start=window[0], end=window[1], minutes=120,
                                     purpose="w")
    barrier = threading.Barrier(6)
    errors = []

    def run():
        try:
            barrier.wait(10)
            waitlist.offer_freed_time(instrument_id=instrument.pk)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    held = Booking.objects.filter(instrument=instrument, state=Booking.State.HELD)
    assert [(row.start, row.end) for row in held] == [(start, end)]
    offered = WaitlistEntry.objects.filter(state=State.OFFERED)
    assert offered.count() == 1 and offered.get().hold_id == held.get().pk
    assert offered.get().pk == WaitlistEntry.objects.order_by("created_at", "id").first().pk   # first in line
