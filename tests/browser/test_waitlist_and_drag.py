"""The waiting list and drag-to-reschedule in a real browser (issue #19, parts 4 and 6)."""

import datetime as dt

import pytest
from django.core import mail

from bookings import services
from bookings.models import Booking, WaitlistEntry
from tests.bookings.conftest import make_instrument, next_weekday
from tests.browser.test_bookings import drag_across, log_out, open_week

pytestmark = pytest.mark.browser


def test_a_waiting_list_user_is_offered_the_slot_when_the_holder_cancels_and_accepts_it(world, page, login):
    instrument = make_instrument(world, name="扫描电镜")
    start = next_weekday(1, 10)
    day = start.date()
    taken = services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=start,
                                    end=start + dt.timedelta(hours=2), purpose="theirs")

    # The researcher finds the time taken on the booking form and joins the waiting list from there.
    login("researcher")
    page.goto(f"/bookings/new/?instrument={instrument.pk}&start={day}T10:00&end={day}T12:00")
    page.fill("#id_purpose", "EDS mapping")
    with page.expect_navigation():
        page.click("[data-testid=submit-booking]")
    with page.expect_navigation():
        page.click("[data-testid=waitlist-offer-link] a")
    assert page.input_value("#id_start") == f"{day}T10:00" and page.input_value("#id_purpose") == "EDS mapping"
    with page.expect_navigation():
        page.click("[data-testid=join-waitlist]")
    assert page.url.endswith("/bookings/waitlist/")
    assert page.locator("[data-testid=waitlist-state]").inner_text() == "Waiting"

    # The holder cancels.
    log_out(page)
    login("other_researcher")
    page.goto(f"/bookings/{taken.pk}/")
    page.check("[data-testid=confirm-cancel]")
    with page.expect_navigation():
        page.click("[data-testid=cancel-booking]")
    entry = WaitlistEntry.objects.get()
    assert entry.state == WaitlistEntry.State.OFFERED
    assert [message.to for message in mail.outbox if "Waiting list" in message.subject] == [[world.researcher.email]]

    # The researcher sees the offer and takes it.
    log_out(page)
    login("researcher")
    page.goto("/bookings/waitlist/")
    assert f"{day} 10:00 – 12:00" in page.locator("[data-testid=offer-when]").inner_text()
    with page.expect_navigation():
        page.click("[data-testid=accept-offer]")
    booking = Booking.objects.get(user=world.researcher, state=Booking.State.CONFIRMED)
    assert page.url.endswith(f"/bookings/{booking.pk}/")
    assert (booking.start, booking.end, booking.purpose) == (start, start + dt.timedelta(hours=2), "EDS mapping")


def _wait_drawn_at_noon(page) -> None:
    """The booking's block is drawn at the 12:00 row (within 3 px). Polled in the page: the calendar
    draws its events again after a move, so a block measured between two draws has no box."""
    page.wait_for_function("""() => {
        const block = document.querySelector('.fc-event.slot-mine');
        const noon = document.querySelector("td.fc-timegrid-slot-lane[data-time='12:00:00']");
        return block && noon && block.isConnected
            && Math.abs(block.getBoundingClientRect().top - noon.getBoundingClientRect().top) < 3;
    }""", timeout=10_000)


def test_a_booking_is_dragged_to_a_free_time_and_moved_and_onto_a_taken_time_refused_and_put_back(
        world, page, login):
    instrument = make_instrument(world, name="透射电镜")
    start = next_weekday(1, 10)
    day = start.date()
    mine = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                   end=start + dt.timedelta(hours=2), purpose="mine")
    services.create_booking(user=world.other_researcher, instrument_id=instrument.pk,
                            start=start + dt.timedelta(hours=4), end=start + dt.timedelta(hours=6), purpose="theirs")

    login("researcher")
    column = open_week(page, instrument, day)
    event = column.locator(".fc-event.slot-mine")
    event.wait_for()
    status = page.locator("[data-testid=move-status]")

    # 10:00-12:00 dragged two hours down: 12:00-14:00 is free, the booking moves.
    drag_across(page, column, "11:00:00", "13:00:00", steps=8)   # pressed inside the booking
    page.wait_for_selector("[data-testid=move-status][data-outcome=moved]")
    assert status.inner_text() == "Booking moved."
    mine.refresh_from_db()
    assert (mine.start, mine.end) == (start + dt.timedelta(hours=2), start + dt.timedelta(hours=4))
    page.wait_for_function("() => document.querySelector('.fc-event.slot-mine .fc-event-time')"
                           ".textContent.startsWith('12:00')")
    page.wait_for_load_state("networkidle")
    _wait_drawn_at_noon(page)

    # Dragged again onto the other researcher's 14:00-16:00: refused, the block snaps back to 12:00.
    drag_across(page, column, "13:00:00", "15:00:00", steps=8)
    page.wait_for_selector("[data-testid=move-status][data-outcome=refused]")
    assert "just taken" in status.inner_text() and "14:00" in status.inner_text()
    page.wait_for_function("() => document.querySelector('.fc-event.slot-mine .fc-event-time')"
                           ".textContent.startsWith('12:00')")
    page.wait_for_load_state("networkidle")   # the events fetched again after the refusal are drawn
    event.wait_for(state="visible")
    _wait_drawn_at_noon(page)   # drawn at 12:00 again, not 14:00
    mine.refresh_from_db()
    assert mine.start == start + dt.timedelta(hours=2)
    assert Booking.objects.filter(instrument=instrument, state=Booking.State.CONFIRMED).count() == 2
