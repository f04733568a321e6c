"""A researcher checks in and out of a booking; the lab manager sees the session."""

import datetime as dt

import pytest
from django.utils import timezone

from bookings import services
from tests.bookings.conftest import make_instrument
from usage.models import UsageSession

pytestmark = pytest.mark.browser


def test_a_researcher_checks_in_and_out_and_the_manager_sees_the_session(world, page, login):
    instrument = make_instrument(world, name="签到仪器", hours=[(d, 0, 1440) for d in range(7)],
                                 policy={"slot_minutes": 5, "min_minutes": 5})
    now = timezone.now()
    start = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=5 - now.minute % 5)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=1), purpose="check-in demo",
                                      now=start - dt.timedelta(hours=2))
    login("researcher")
    page.goto(f"/bookings/{booking.pk}/")
    with page.expect_navigation():
        page.click("[data-testid=check-in]")
    page.fill("#samples", "3")
    with page.expect_navigation():
        page.click("[data-testid=check-out]")
    assert page.locator("[data-testid=booking-sessions] tbody tr").count() == 1
    session = UsageSession.objects.get(booking=booking)
    assert session.end is not None and session.samples == 3 and session.source == "checkin"
    page.context.clear_cookies()
    login("manager")
    page.goto("/bookings/review/")
    assert page.locator(f"[data-testid=sessions] tr[data-session='{session.pk}']").count() == 1
