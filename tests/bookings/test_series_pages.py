"""The "repeat" option of the booking form and the series page, through the Django test client (en and zh)."""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse

from bookings.models import Booking, BookingSeries
from tests.bookings.conftest import make_instrument
from tests.bookings.test_pages import client_for, local
from tests.bookings.test_series import NOW, TUESDAY, single

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def repeat_post(client, instrument, **extra):
    fields = {"start": local(TUESDAY), "end": local(TUESDAY + dt.timedelta(hours=2)), "purpose": "course",
              "repeat": "WEEKLY", "interval": 1, "weekdays": ["TU"], "count": 4, **extra}
    return client.post(f"{reverse('bookings:new')}?instrument={instrument.pk}", fields)


def rows(body: str) -> list[tuple[str, str]]:
    return re.findall(r'data-testid="occurrence" data-ok="(yes|no)"[^>]*>\s*<td>(?:<a [^>]*>)?([^<]+)', body)


def test_the_form_previews_every_date_then_books_the_free_ones(world):
    instrument = make_instrument(world)
    single(world.other_researcher, instrument, TUESDAY + dt.timedelta(weeks=1))
    client = client_for(world.researcher)
    preview = repeat_post(client, instrument, lab=world.lab_a.pk)
    assert preview.status_code == 200
    body = preview.content.decode()
    assert [ok for ok, _day in rows(body)] == ["yes", "no", "yes", "yes"]
    assert "3 of 4 dates can be booked" in body
    assert "Sorry, that time was just taken" in body and 'data-testid="confirm-series"' in body
    assert not Booking.objects.filter(user=world.researcher).exists()

    booked = repeat_post(client, instrument, lab=world.lab_a.pk, confirm="1")
    series = BookingSeries.objects.get()
    assert booked.status_code == 302 and booked.url == reverse("bookings:series", args=[series.pk])
    assert series.occurrences.count() == 3
    page = client.get(booked.url).content.decode()
    assert "3 of 4 dates booked." in page
    assert [ok for ok, _day in rows(page)] == ["yes", "no", "yes", "yes"]
    assert "every week (Tue), 4 times" in page
    # Each date's booking page links back to the series.
    first = series.occurrences.order_by("start").first()
    assert reverse("bookings:series", args=[series.pk]) in client.get(
        reverse("bookings:detail", args=[first.pk])).content.decode()


def test_the_form_says_a_bad_repeat_next_to_its_field(world):
    instrument = make_instrument(world)
    client = client_for(world.researcher)
    response = repeat_post(client, instrument, lab=world.lab_a.pk, count="")
    assert re.search(r'data-testid="field-errors"><li>Say how many times', response.content.decode())
    response = repeat_post(client, instrument, lab=world.lab_a.pk, weekdays=["WE"])
    assert "The first booking must fall on one of the chosen weekdays." in response.content.decode()
    response = repeat_post(client, instrument, lab=world.lab_a.pk, count=30)
    assert re.search(r'data-testid="field-errors"><li>Bookings open at most 60 days ahead.', response.content.decode())
    assert not Booking.objects.exists()


def test_the_page_speaks_chinese(world):
    instrument = make_instrument(world)
    single(world.other_researcher, instrument, TUESDAY + dt.timedelta(weeks=1))
    client = client_for(world.researcher)
    client.cookies.load({"django_language": "zh-hans"})
    body = repeat_post(client, instrument, lab=world.lab_a.pk).content.decode()
    assert "4 个日期中 3 个可以预约" in body and "重复" in body


def test_cancel_this_and_following_then_all_from_the_series_page(world):
    instrument = make_instrument(world)
    client = client_for(world.researcher)
    repeat_post(client, instrument, lab=world.lab_a.pk, confirm="1")
    series = BookingSeries.objects.get()
    ids = list(series.occurrences.order_by("start").values_list("pk", flat=True))
    url = reverse("bookings:series_cancel", args=[series.pk])
    response = client.post(url, {"scope": "following", "booking": ids[2]})
    assert response.status_code == 302
    assert list(series.occurrences.order_by("start").values_list("state", flat=True)) == [
        "confirmed", "confirmed", "cancelled", "cancelled"]
    assert "2 bookings cancelled." in client.get(response.url).content.decode()
    client.post(url, {"scope": "all"})
    assert set(series.occurrences.values_list("state", flat=True)) == {"cancelled"}


def test_others_do_not_see_the_series_and_the_lab_must_give_a_reason(world):
    instrument = make_instrument(world)
    repeat_post(client_for(world.researcher), instrument, lab=world.lab_a.pk, confirm="1")
    series = BookingSeries.objects.get()
    assert client_for(world.other_researcher).get(reverse("bookings:series", args=[series.pk])).status_code == 404
    lab = client_for(world.manager)
    assert lab.get(reverse("bookings:series", args=[series.pk])).status_code == 200
    refused = lab.post(reverse("bookings:series_cancel", args=[series.pk]), {"scope": "all"}, follow=True)
    assert "Please give a reason." in refused.content.decode()
    assert set(series.occurrences.values_list("state", flat=True)) == {"confirmed"}
