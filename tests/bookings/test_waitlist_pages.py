"""The waiting-list pages and the calendar's move endpoint through the Django test client."""

import datetime as dt

import pytest
from django.urls import reverse

from bookings import services
from bookings.models import Booking, WaitlistEntry
from tests.bookings.test_pages import book, client_for, form_errors, form_post, local

pytestmark = pytest.mark.django_db


def test_a_conflict_on_the_booking_form_links_to_the_waiting_list_for_that_time(world, instrument, slot):
    book(world.other_researcher, instrument, *slot)
    client = client_for(world.researcher)
    refused = form_post(client, instrument, *slot, purpose="XRD", lab=world.lab_a.pk)
    assert "just taken" in form_errors(refused)
    page = refused.content.decode()
    assert 'data-testid="join-waitlist-link"' in page and "purpose=XRD" in page
    link = reverse("bookings:join_waitlist") + f"?instrument={instrument.pk}&start={local(slot[0])}" \
                                               f"&end={local(slot[1])}&purpose=XRD"
    form = client.get(link)
    assert form.status_code == 200 and local(slot[0]) in form.content.decode()
    joined = client.post(f"{reverse('bookings:join_waitlist')}?instrument={instrument.pk}",
                         {"start": local(slot[0]), "end": local(slot[1]), "purpose": "XRD", "lab": world.lab_a.pk},
                         follow=True)
    assert joined.redirect_chain[-1][0] == reverse("bookings:waitlist")
    entry = WaitlistEntry.objects.get(user=world.researcher)
    assert (entry.start, entry.end, entry.minutes) == (slot[0], slot[1], 120)
    assert 'data-testid="waitlist-row"' in joined.content.decode()


def test_joining_a_free_time_is_refused_on_the_form(world, instrument, slot):
    response = client_for(world.researcher).post(
        f"{reverse('bookings:join_waitlist')}?instrument={instrument.pk}",
        {"start": local(slot[0]), "end": local(slot[1]), "purpose": "x", "lab": world.lab_a.pk})
    assert response.status_code == 200
    assert "free now: book it" in form_errors(response)
    assert not WaitlistEntry.objects.exists()


def test_an_offer_is_shown_and_accepted_on_the_waiting_list_page(world, instrument, slot,
                                                                 django_capture_on_commit_callbacks):
    taken = book(world.other_researcher, instrument, *slot)
    entry = services.join_waitlist(user=world.researcher, instrument_id=instrument.pk, start=slot[0], end=slot[1],
                                   purpose="waiting")
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_booking(actor=world.other_researcher, booking_id=taken.pk)
    client = client_for(world.researcher)
    page = client.get(reverse("bookings:waitlist")).content.decode()
    assert 'data-testid="offer"' in page and "is free for you" in page
    assert client_for(world.other_researcher).post(reverse("bookings:accept_offer", args=[entry.pk])).status_code == 404
    accepted = client.post(reverse("bookings:accept_offer", args=[entry.pk]))
    booking = Booking.objects.get(user=world.researcher, state=Booking.State.CONFIRMED)
    assert accepted.status_code == 302 and accepted["Location"] == reverse("bookings:detail", args=[booking.pk])
    again = client.post(reverse("bookings:decline_offer", args=[entry.pk]), follow=True)
    assert "There is no open offer on this entry." in again.content.decode()


def test_the_calendar_move_endpoint_moves_refuses_with_a_409_and_hides_others_bookings(world, instrument, slot):
    mine = book(world.researcher, instrument, *slot)
    theirs = book(world.other_researcher, instrument, slot[1] + dt.timedelta(hours=1))
    client = client_for(world.researcher)
    url = reverse("bookings:move", args=[mine.pk])
    later = slot[0] + dt.timedelta(days=1)
    moved = client.post(url, {"start": local(later), "end": local(later + dt.timedelta(hours=3))})
    assert moved.status_code == 200 and moved.json()["detail"] == "Booking moved."
    mine.refresh_from_db()
    assert (mine.start, mine.end) == (later, later + dt.timedelta(hours=3))
    zone = slot[0].tzinfo
    onto = client.post(url, {"start": local(theirs.start.astimezone(zone)), "end": local(theirs.end.astimezone(zone))})
    assert onto.status_code == 409 and onto.json()["code"] == "slot_taken"
    assert "just taken" in onto.json()["detail"]
    mine.refresh_from_db()
    assert mine.start == later
    bad = client.post(url, {"start": "tomorrow", "end": local(later)})
    assert bad.status_code == 422
    assert client_for(world.other_researcher).post(
        url, {"start": local(later), "end": local(later + dt.timedelta(hours=1))}).status_code == 404
    assert client.post(reverse("bookings:move", args=[theirs.pk]),
                       {"start": local(later), "end": local(later + dt.timedelta(hours=1))}).status_code == 404


def test_only_the_bookers_open_bookings_are_draggable_on_the_calendar(world, instrument, slot):
    mine = book(world.researcher, instrument, *slot)
    book(world.other_researcher, instrument, slot[1] + dt.timedelta(hours=1))
    monday = slot[0] - dt.timedelta(days=slot[0].weekday())
    events = client_for(world.researcher).get(
        reverse("bookings:calendar_events", args=[instrument.pk]),
        {"start": monday.date().isoformat(), "end": (monday + dt.timedelta(days=7)).date().isoformat()}).json()
    editable = [event for event in events if event.get("editable")]
    assert [event["extendedProps"]["bookingId"] for event in editable] == [mine.pk]
    assert editable[0]["extendedProps"]["moveUrl"] == reverse("bookings:move", args=[mine.pk])


def test_the_waiting_list_page_speaks_chinese(world):
    client = client_for(world.researcher)
    client.cookies.load({"django_language": "zh-hans"})
    page = client.get(reverse("bookings:waitlist")).content.decode()
    assert "我的候补" in page and "您没有候补任何时段" in page


def test_time_held_for_a_waiting_user_shows_on_their_calendar_as_held_for_them(world, instrument, slot,
                                                                              django_capture_on_commit_callbacks):
    taken = book(world.other_researcher, instrument, *slot)
    services.join_waitlist(user=world.researcher, instrument_id=instrument.pk, start=slot[0], end=slot[1],
                           purpose="waiting")
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_booking(actor=world.other_researcher, booking_id=taken.pk)
    monday = slot[0] - dt.timedelta(days=slot[0].weekday())
    events = client_for(world.researcher).get(
        reverse("bookings:calendar_events", args=[instrument.pk]),
        {"start": monday.date().isoformat(), "end": (monday + dt.timedelta(days=7)).date().isoformat()}).json()
    mine = [event for event in events if event["extendedProps"].get("kind") == "mine"]
    assert [(event["title"], event["url"], event["editable"]) for event in mine] == \
        [("Held for you: answer on your waiting list", reverse("bookings:waitlist"), False)]
