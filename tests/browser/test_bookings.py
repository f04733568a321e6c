"""Booking on the week calendar in a real browser (timezone pinned to Asia/Shanghai by the fixture).

Set BOOKINGS_SCREENSHOT=/tmp/calendar.png to keep a picture of the calendar page.
"""

import datetime as dt
import os

import pytest

from bookings.models import Booking
from tests.bookings.conftest import make_instrument, next_weekday
from tests.browser.conftest import open_menu

pytestmark = pytest.mark.browser


def open_week(page, instrument, day: dt.date):
    """The instrument's calendar, moved forward with its own "next" button to the week holding ``day``."""
    page.goto(f"/bookings/instrument/{instrument.pk}/")
    page.wait_for_selector("#calendar[data-ready=true]")
    column = page.locator(f"td.fc-timegrid-col[data-date='{day.isoformat()}']")
    for _ in range(4):
        if column.count():
            break
        page.locator(".fc-next-button").click()
    page.wait_for_selector(f"td.fc-timegrid-col[data-date='{day.isoformat()}'] .fc-bg-event.slot-free, "
                           f"td.fc-timegrid-col[data-date='{day.isoformat()}'] .fc-event.slot-busy")
    return column


def drag_across(page, column, first: str, last: str, *, steps: int = 5):
    """Press the mouse in the ``first`` slot row of the day's column and release it in the ``last`` one
    (on free time it selects a new booking; on a booking it drags the booking)."""
    first_row = page.locator(f"td.fc-timegrid-slot-lane[data-time='{first}']")
    first_row.evaluate("row => row.scrollIntoView({block: 'center'})")  # the mouse only acts inside the viewport
    box = column.bounding_box()
    x = box["x"] + box["width"] / 2

    def y_of(time: str) -> float:
        row = page.locator(f"td.fc-timegrid-slot-lane[data-time='{time}']").bounding_box()
        return row["y"] + row["height"] / 2

    page.mouse.move(x, y_of(first))
    page.mouse.down()
    page.mouse.move(x, (y_of(first) + y_of(last)) / 2, steps=steps)
    page.mouse.move(x, y_of(last), steps=steps)
    page.mouse.up()


def log_out(page):
    with page.expect_navigation():
        open_menu(page)
        page.locator("header form[action$='/logout/'] button").click()


def test_a_researcher_books_a_free_slot_on_the_week_calendar_and_a_second_researcher_cannot(
        world, page, login):
    instrument = make_instrument(world, name="扫描电镜")
    start = next_weekday(1, 10)  # a Tuesday 10:00 in Shanghai, at least a week ahead
    day = start.date()

    login("researcher")
    column = open_week(page, instrument, day)
    assert page.locator("[data-testid=viewer-zone]").inner_text() == "Asia/Shanghai"
    with page.expect_navigation(url="**/bookings/new/**"):
        drag_across(page, column, "10:00:00", "11:30:00")

    # The form opens prefilled with the dragged slot, in the instrument's local time.
    assert page.input_value("#id_start") == f"{day}T10:00"
    assert page.input_value("#id_end") == f"{day}T12:00"
    assert "Asia/Shanghai" in page.locator("[data-testid=zone-explainer]").inner_text()
    page.fill("#id_purpose", "SEM imaging of coral skeletons")
    with page.expect_navigation():
        page.click("[data-testid=submit-booking]")
    booking = Booking.objects.get()
    assert page.url.endswith(f"/bookings/{booking.pk}/")
    assert (booking.start, booking.end, booking.user) == (start, start + dt.timedelta(hours=2), world.researcher)

    page.goto("/bookings/mine/")
    row = page.locator(f"[data-testid=upcoming] [data-booking='{booking.pk}']")
    assert instrument.name_zh in row.inner_text()
    assert f"{day} 10:00 – 12:00" in row.inner_text()
    assert row.locator("[data-testid=state]").get_attribute("data-state") == "confirmed"

    # Another researcher sees the slot busy and cannot select it.
    log_out(page)
    login("other_researcher")
    column = open_week(page, instrument, day)
    busy = column.locator(".fc-event.slot-busy")
    assert busy.count() == 1 and "10:00" in busy.inner_text()
    if path := os.environ.get("BOOKINGS_SCREENSHOT"):
        page.screenshot(path=path, full_page=True)
    drag_across(page, column, "10:00:00", "11:30:00")
    page.wait_for_timeout(500)
    assert "/bookings/new/" not in page.url and page.locator(".fc-highlight").count() == 0

    # A stale page or a typed URL reaches the form: the service refuses, the form says why.
    page.goto(f"/bookings/new/?instrument={instrument.pk}&start={day}T10:00&end={day}T12:00")
    page.fill("#id_purpose", "Same slot, please")
    with page.expect_navigation():
        page.click("[data-testid=submit-booking]")
    assert "just taken" in page.locator("[data-testid=form-errors]").inner_text()
    assert Booking.objects.count() == 1


def test_a_researcher_books_a_weekly_series_with_one_taken_week_and_gets_the_rest(world, page, login):
    from bookings import services
    from bookings.models import BookingSeries

    instrument = make_instrument(world, name="共聚焦显微镜")
    start = next_weekday(1, 10)   # Tuesdays 10:00-12:00 in Shanghai, four weeks from next week
    taken = next_weekday(1, 11, weeks_ahead=3)
    services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=taken,
                            end=taken + dt.timedelta(hours=1), purpose="someone else's week")

    login("researcher")
    page.goto(f"/bookings/new/?instrument={instrument.pk}&start={start:%Y-%m-%dT%H:%M}"
              f"&end={start + dt.timedelta(hours=2):%Y-%m-%dT%H:%M}")
    page.fill("#id_purpose", "Weekly imaging for the group")
    page.locator("[data-testid=repeat] summary").click()
    page.select_option("#id_repeat", "WEEKLY")
    page.locator("input[name=weekdays][value=TU]").check()
    page.fill("#id_count", "4")
    with page.expect_navigation():
        page.click("[data-testid=submit-booking]")

    # The preview names every date, and exactly which one is taken and why; nothing is booked yet.
    rows = page.locator("[data-testid=series-preview] [data-testid=occurrence]")
    assert rows.count() == 4
    assert [rows.nth(i).get_attribute("data-ok") for i in range(4)] == ["yes", "yes", "no", "yes"]
    assert "11:00" in rows.nth(2).inner_text() and "taken" in rows.nth(2).inner_text()
    assert not BookingSeries.objects.exists()
    with page.expect_navigation(url="**/bookings/series/*/"):
        page.click("[data-testid=confirm-series]")

    series = BookingSeries.objects.get()
    assert "3 of 4 dates booked." in page.content()
    rows = page.locator("[data-testid=occurrences] [data-testid=occurrence]")
    assert [rows.nth(i).get_attribute("data-state") for i in range(4)] == ["confirmed", "confirmed", "", "confirmed"]
    starts = sorted(series.occurrences.values_list("start", flat=True))
    assert starts == [start, start + dt.timedelta(weeks=1), start + dt.timedelta(weeks=3)]
    assert set(series.occurrences.values_list("user", flat=True)) == {world.researcher.pk}
