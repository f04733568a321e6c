"""The catalog search's "free between A and B for at least N hours" narrowing step."""

import datetime as dt

import pytest
from django.test import Client

from bookings import services
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.django_db


def test_search_finds_instruments_with_enough_contiguous_free_time(world, api_as):
    busy = make_instrument(world, name="满载仪器")
    make_instrument(world, name="空闲仪器")
    day = next_weekday(1, 8)
    for hour in (8, 10, 12, 14, 16):  # 08:00-18:00 booked solid, in 2-hour blocks
        start = day.replace(hour=hour)
        services.create_booking(user=world.researcher, instrument_id=busy.pk, start=start,
                                end=start + dt.timedelta(hours=2), purpose="x")
    window = {"free_from": day.isoformat(), "free_to": day.replace(hour=18).isoformat(), "free_hours": 2}
    names = {i["name_zh"] for i in api_as(None).get("/instruments", window).json()["items"]}
    assert "空闲仪器" in names and "满载仪器" not in names
    services.cancel_booking(actor=world.researcher, booking_id=busy.bookings.get(start=day.replace(hour=12)).pk)
    page = api_as(None).get("/instruments", window).json()
    assert {"空闲仪器", "满载仪器"} <= {i["name_zh"] for i in page["items"]}
    assert page["count"] == len(page["items"])   # the count carried by the page's statement (count_in_page)
    nothing = api_as(None).get("/instruments", {**window, "free_hours": 11}).json()   # 11 h in a 10-hour window
    assert (nothing["count"], nothing["items"]) == (0, [])


def test_a_bad_free_window_is_422(world, api_as):
    response = api_as(None).get("/instruments", {"free_from": "2026-12-01T08:00:00+08:00",
                                                 "free_to": "2027-03-01T08:00:00+08:00", "free_hours": 2})
    assert response.status_code == 422


def test_the_search_page_takes_the_free_window(world):
    make_instrument(world, name="页面空闲")
    day = next_weekday(2, 8).replace(tzinfo=None)
    page = Client().get("/instruments/", {"free_from": day.strftime("%Y-%m-%dT%H:%M"),
                                         "free_to": day.replace(hour=18).strftime("%Y-%m-%dT%H:%M"),
                                         "free_hours": "3"})
    assert page.status_code == 200 and "页面空闲" in page.content.decode()
