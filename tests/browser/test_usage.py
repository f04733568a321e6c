"""A researcher checks in and out of a booking; the lab manager sees the session."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from bookings import services
from tests.bookings.conftest import make_instrument
from tests.usage.test_review_page import make_flags
from usage.models import ReviewFlag, UsageSession

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


def test_the_manager_accepts_selected_flags_in_one_table_that_fits_a_laptop(world, sized):
    """The review's decision controls show their value and "Save" stays on one line; two ticked rows
    are accepted with one button, the other flags stay open."""
    flags = make_flags(world)
    page = sized("manager", "laptop", "zh-hans")
    page.goto("/bookings/review/")
    rows = page.locator("[data-testid=flags] tbody tr")
    expect(rows).to_have_count(4)
    fits = page.evaluate("""() => [...document.querySelectorAll('.review-decision select, .review-decision button')]
        .map(e => e.scrollWidth <= e.clientWidth + 1 && e.getClientRects().length === 1
                  && e.getBoundingClientRect().height < 3 * parseFloat(getComputedStyle(e).fontSize))""")
    assert fits and all(fits)
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    chosen = [flags["no_show"].pk, flags["unbooked"].pk]
    for pk in chosen:
        page.locator(f"tr[data-flag-id='{pk}'] input[name=selected]").check()
    with page.expect_navigation():
        page.click("[data-testid=accept-selected]")
    expect(page.locator(".messages")).to_contain_text("已接受 2 项")
    expect(rows).to_have_count(2)
    assert set(ReviewFlag.objects.filter(state="accepted").values_list("pk", flat=True)) == set(chosen)


def test_select_all_ticks_every_row(world, sized):
    make_flags(world)
    page = sized("manager", "laptop", "zh-hans")
    page.goto("/bookings/review/")
    page.check("[data-testid=select-all]")
    expect(page.locator("[data-testid=flags] input[name=selected]:checked")).to_have_count(4)
