"""Recurring bookings through the API: preview, book all or the rest, read, cancel; errors name the field."""

import datetime as dt

import pytest
import time_machine

from bookings.models import Booking, BookingSeries
from tests.bookings.conftest import make_instrument
from tests.bookings.test_series import NOW, TUESDAY, single

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def series_body(instrument, **extra):
    return {"instrument_id": instrument.pk, "start": TUESDAY.isoformat(),
            "end": (TUESDAY + dt.timedelta(hours=2)).isoformat(), "purpose": "weekly group slot",
            "frequency": "WEEKLY", "weekdays": ["TU"], "count": 4, **extra}


def test_preview_then_book_the_rest_of_a_series_with_one_taken_week(world, api_as):
    instrument = make_instrument(world)
    taken = single(world.other_researcher, instrument, TUESDAY + dt.timedelta(weeks=2))
    api = api_as(world.researcher)

    preview = api.post("/booking-series", series_body(instrument, dry_run=True))
    assert preview.status_code == 200, preview.json()
    body = preview.json()
    assert body["id"] is None and body["dry_run"] is True and body["rrule"] == "FREQ=WEEKLY;BYDAY=TU;COUNT=4"
    assert body["time_zone"] == "Asia/Shanghai"
    assert [(o["ok"], o["code"]) for o in body["occurrences"]] == [
        (True, ""), (True, ""), (False, "slot_taken"), (True, "")]
    assert dt.datetime.fromisoformat(body["occurrences"][2]["conflict"]["start"]) == taken.start
    assert not BookingSeries.objects.exists()

    refused = api.post("/booking-series", series_body(instrument))
    assert refused.status_code == 409
    assert refused.json()["code"] == "series_conflicts"
    assert [o["code"] for o in refused.json()["occurrences"]] == ["", "", "slot_taken", ""]
    assert not BookingSeries.objects.exists()

    booked = api.post("/booking-series", series_body(instrument, book_available=True))
    assert booked.status_code == 201, booked.json()
    series = booked.json()
    assert [(o["ok"], o["state"], o["code"]) for o in series["occurrences"]] == [
        (True, "confirmed", ""), (True, "confirmed", ""), (False, "", "slot_taken"), (True, "confirmed", "")]
    ids = [o["booking_id"] for o in series["occurrences"] if o["ok"]]
    assert set(Booking.objects.filter(series_id=series["id"]).values_list("pk", flat=True)) == set(ids)

    again = api.get(f"/booking-series/{series['id']}")
    assert again.status_code == 200 and again.json() == series
    assert api.get("/booking-series").json()["count"] == 1
    # Each occurrence is an ordinary booking of the booker's.
    assert api.get(f"/bookings/{ids[0]}").json()["state"] == "confirmed"


def test_all_free_books_all_at_once(world, api_as):
    instrument = make_instrument(world)
    response = api_as(world.researcher).post("/booking-series", series_body(instrument, weekdays=["TU", "FR"],
                                                                             count=None, until="2027-03-26"))
    assert response.status_code == 201, response.json()
    starts = [dt.datetime.fromisoformat(o["start"]) for o in response.json()["occurrences"]]
    assert [s.astimezone(TUESDAY.tzinfo).strftime("%a %d") for s in starts] == [
        "Tue 16", "Fri 19", "Tue 23", "Fri 26"]


def test_cancel_following_and_all_through_the_api(world, api_as):
    instrument = make_instrument(world)
    api = api_as(world.researcher)
    series = api.post("/booking-series", series_body(instrument)).json()
    ids = [o["booking_id"] for o in series["occurrences"]]
    response = api.post(f"/booking-series/{series['id']}/cancel", {"scope": "following", "booking_id": ids[2]})
    assert response.status_code == 200, response.json()
    assert [o["state"] for o in response.json()["occurrences"]] == ["confirmed", "confirmed", "cancelled",
                                                                    "cancelled"]
    response = api.post(f"/booking-series/{series['id']}/cancel", {"scope": "one", "booking_id": ids[0]})
    assert [o["state"] for o in response.json()["occurrences"]][:2] == ["cancelled", "confirmed"]
    response = api.post(f"/booking-series/{series['id']}/cancel", {"scope": "all"})
    assert {o["state"] for o in response.json()["occurrences"]} == {"cancelled"}
    # One that is already cancelled, asked for alone, is answered by the single booking's rule (idempotent).
    assert api.post(f"/booking-series/{series['id']}/cancel", {"scope": "one", "booking_id": ids[0]}).status_code \
        == 200


def test_others_do_not_see_a_series_and_the_lab_cancels_with_a_reason(world, api_as):
    instrument = make_instrument(world)
    series = api_as(world.researcher).post("/booking-series", series_body(instrument)).json()
    other = api_as(world.other_researcher)
    assert other.get(f"/booking-series/{series['id']}").status_code == 404
    assert other.post(f"/booking-series/{series['id']}/cancel", {"scope": "all"}).status_code == 404
    assert other.get("/booking-series").json()["count"] == 0
    manager = api_as(world.manager)
    assert manager.get(f"/booking-series/{series['id']}").status_code == 200
    refused = manager.post(f"/booking-series/{series['id']}/cancel", {"scope": "all"})
    assert refused.status_code == 422 and refused.json()["code"] == "reason_required"
    done = manager.post(f"/booking-series/{series['id']}/cancel", {"scope": "all", "reason": "course moved"})
    assert {o["state"] for o in done.json()["occurrences"]} == {"cancelled"}


@pytest.mark.parametrize(("extra", "status", "field_or_code"), [
    ({"frequency": "YEARLY"}, 422, "body.payload.frequency"),
    ({"weekdays": ["XX"]}, 422, "body.payload.weekdays.0"),
    ({"count": 101}, 422, "body.payload.count"),
    ({"interval": 0}, 422, "body.payload.interval"),
    ({"until": "9999-01-01", "count": None}, 422, "body.payload.until"),
    ({"count": 2, "until": "2027-04-01"}, 422, "count_or_until"),
    ({"count": None, "until": "2031-01-01", "frequency": "DAILY", "weekdays": []}, 422, "too_many_occurrences"),
    ({"count": 20}, 422, "beyond_horizon"),
    ({"weekdays": ["WE"]}, 422, "first_not_in_rule"),
    ({"owner_id": 1}, 422, "body.payload.owner_id"),
    ({"start": "2027-03-16T09:00:00"}, 422, "naive_datetime"),
])
def test_bad_series_input_is_a_4xx_naming_the_field_or_rule(world, api_as, extra, status, field_or_code):
    instrument = make_instrument(world)
    response = api_as(world.researcher).post("/booking-series", series_body(instrument, **extra))
    assert response.status_code == status, response.json()
    body = response.json()
    named = [error["field"] for error in body.get("errors", [])] + [body["code"]]
    assert field_or_code in named, body
    assert not Booking.objects.exists()


def test_a_series_on_an_invisible_instrument_is_404(world, api_as):
    instrument = make_instrument(world, publish=False)
    response = api_as(world.other_researcher).post("/booking-series", series_body(instrument))
    assert response.status_code == 404
