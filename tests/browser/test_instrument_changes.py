"""A manager's downtime over two bookings in a real browser: shown, cancelled with a reason, rebooked by a booker."""

import datetime as dt

import pytest
from django.core import mail

from bookings import services
from bookings.models import Booking
from catalog.models import Downtime
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.browser


def test_downtime_over_two_bookings_is_shown_cancelled_and_each_booker_can_rebook(world, page, login):
    instrument = make_instrument(world)
    tuesday = next_weekday(1, 13)
    first = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=tuesday,
                                    end=tuesday + dt.timedelta(hours=2), purpose="EDS mapping")
    second = services.create_booking(user=world.other_researcher, instrument_id=instrument.pk,
                                     start=tuesday + dt.timedelta(hours=2), end=tuesday + dt.timedelta(hours=3),
                                     purpose="SE imaging")
    mail.outbox.clear()

    login("manager")
    page.goto(f"/instruments/{instrument.pk}/downtime/")
    page.fill("#id_start", f"{tuesday:%Y-%m-%d}T12:00")
    page.fill("#id_end", f"{tuesday:%Y-%m-%d}T17:30")
    page.select_option("#id_kind", "unplanned")
    page.fill("#id_reason", "Vacuum leak")
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()
    affected = page.locator("fieldset.affected-bookings")
    assert affected.get_attribute("data-affected") == "2"
    assert "researcher" in affected.inner_text() and "other_researcher" in affected.inner_text()
    assert not Downtime.objects.exists()   # nothing saved before the manager decides
    page.check("input[name=bookings][value=cancel]")
    page.fill("textarea[name=notice]", "Pump failed; sorry, please rebook")
    with page.expect_navigation():
        affected.locator("button[type=submit]").click()
    assert Downtime.objects.count() == 1
    for booking in (first, second):
        booking.refresh_from_db()
        assert booking.state == "cancelled" and booking.reason == "Pump failed; sorry, please rebook"
    to = sorted(m.to[0] for m in mail.outbox if "method=\"CANCEL\"" in str(m.message()) or
                "method=CANCEL" in str(m.message()))
    assert to == sorted([world.researcher.email, world.other_researcher.email])

    page.context.clear_cookies()
    login("researcher")
    page.goto(f"/bookings/{first.pk}/")
    offers = page.locator("[data-testid=rebook-offer]")
    assert offers.count() >= 1
    with page.expect_navigation():
        offers.first.click()
    rebooked = Booking.objects.filter(user=world.researcher, state="confirmed").get()
    assert page.url.endswith(f"/bookings/{rebooked.pk}/")
    assert rebooked.end - rebooked.start == dt.timedelta(hours=2) and rebooked.purpose == "EDS mapping"
