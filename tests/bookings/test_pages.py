"""The booking pages through the Django test client: who sees what, what the forms say, CSRF."""

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse

from bookings import services
from bookings.models import Booking, FeedToken
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.django_db


def client_for(user=None, **kwargs) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    client.cookies.load({"django_language": "en"})
    return client


def book(user, instrument, start, end=None, **extra):
    return services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                   end=end or start + dt.timedelta(hours=2), purpose="SEM imaging", **extra)


def local(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M")


def form_post(client, instrument, start, end, purpose="SEM imaging of coral samples", **extra):
    return client.post(f"{reverse('bookings:new')}?instrument={instrument.pk}",
                       {"start": local(start), "end": local(end), "purpose": purpose, **extra})


def form_errors(response) -> str:
    match = re.search(r'data-testid="form-errors">(.*?)</div>', response.content.decode(), re.S)
    return match.group(1) if match else ""


# --- the week calendar ---------------------------------------------------------------------------


def test_anonymous_visitors_see_a_published_instruments_calendar_with_a_login_link(world, instrument):
    response = client_for().get(reverse("bookings:calendar", args=[instrument.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="login-to-book"' in body
    assert "Asia/Shanghai" in body and "UTC+08:00" in body
    assert "vendor/fullcalendar/index.global.min.js" in body
    # Every script and stylesheet is served by us: no CDN, no other host. (The check reads the tags'
    # addresses, not the whole page: a random CSRF token may well contain the letters "cdn".)
    assets = re.findall(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]*)"', body)
    assert assets and all(url.startswith("/") and not url.startswith("//") for url in assets), assets


def test_a_draft_instrument_is_404_for_outsiders_and_shown_to_its_lab(world):
    draft = make_instrument(world, name="草稿", publish=False)
    url = reverse("bookings:calendar", args=[draft.pk])
    assert client_for().get(url).status_code == 404
    assert client_for(world.other_researcher).get(url).status_code == 404
    assert client_for(world.manager).get(url).status_code == 200
    events = reverse("bookings:calendar_events", args=[draft.pk])
    response = client_for().get(events, {"start": "2026-01-05T00:00:00", "end": "2026-01-12T00:00:00"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_an_unknown_instrument_is_404(world):
    assert client_for().get(reverse("bookings:calendar", args=[999999])).status_code == 404


def test_the_events_feed_has_free_and_busy_times_without_personal_data(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    monday = slot[0] - dt.timedelta(days=slot[0].weekday(), hours=slot[0].hour)
    params = {"start": monday.replace(tzinfo=None).isoformat(),
              "end": (monday + dt.timedelta(days=7)).replace(tzinfo=None).isoformat(), "timeZone": "Asia/Shanghai"}
    url = reverse("bookings:calendar_events", args=[instrument.pk])

    events = client_for(world.other_researcher).get(url, params).json()
    busy = [e for e in events if e["extendedProps"]["kind"] == "busy"]
    free = [e for e in events if e["extendedProps"]["kind"] == "free"]
    assert [(e["start"], e["end"]) for e in busy] == [(slot[0].isoformat(), slot[1].isoformat())]
    assert free and all(e["display"] == "background" and e["groupId"] == "free" for e in free)
    assert all(e["start"].endswith("+08:00") for e in events)
    text = str(events)
    assert "Researcher" not in text and "SEM imaging" not in text
    assert all("url" not in e for e in events) and {e["title"] for e in busy} == {"Busy"}

    mine = client_for(world.researcher).get(url, params).json()
    assert [e["url"] for e in mine if e["extendedProps"]["kind"] == "mine"] == [f"/bookings/{booking.pk}/"]
    assert not [e for e in mine if e["extendedProps"]["kind"] == "busy"]


@pytest.mark.parametrize("params,status", [
    ({}, 400),
    ({"start": "yesterday", "end": "tomorrow"}, 400),
    ({"start": "2026-01-12T00:00:00", "end": "2026-01-05T00:00:00"}, 422),
    ({"start": "2026-01-01T00:00:00", "end": "2027-01-01T00:00:00"}, 422),
    ({"start": "0001-01-01T00:00:00+14:00", "end": "0001-01-02T00:00:00+14:00"}, 400),
    ({"start": "9999-12-31T00:00:00-12:00", "end": "9999-12-31T20:00:00-12:00"}, 400),
    ({"start": "9999-12-30T00:00:00", "end": "9999-12-31T00:00:00"}, 200),
])
def test_bad_ranges_are_json_errors_not_500(world, instrument, params, status):
    response = client_for().get(reverse("bookings:calendar_events", args=[instrument.pk]), params)
    assert response.status_code == status, response.content
    assert response.status_code == 200 or set(response.json()) == {"code", "detail"}


def test_an_offset_in_the_range_is_honoured_even_when_its_plus_arrives_unescaped(world, instrument):
    url = reverse("bookings:calendar_events", args=[instrument.pk])
    response = client_for().get(f"{url}?start=2026-01-05T00:00:00+08:00&end=2026-01-12T00:00:00+08:00")
    assert response.status_code == 200


@pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31", "garbage", ""])
def test_a_far_or_broken_week_falls_back_to_this_week(world, instrument, date):
    assert client_for().get(reverse("bookings:calendar", args=[instrument.pk]), {"date": date}).status_code == 200
    assert client_for().get(reverse("bookings:free_list", args=[instrument.pk]), {"date": date}).status_code == 200


def test_the_free_list_offers_grid_aligned_booking_links(world, instrument, slot):
    response = client_for(world.researcher).get(reverse("bookings:free_list", args=[instrument.pk]),
                                                {"date": slot[0].date().isoformat()})
    assert response.status_code == 200
    body = response.content.decode()
    assert f"start={slot[0]:%Y-%m-%d}T08:00" in body


# --- the booking form ----------------------------------------------------------------------------


def test_the_form_is_prefilled_from_the_calendar_and_names_the_instruments_zone(world, instrument, slot):
    response = client_for(world.researcher).get(reverse("bookings:new"), {
        "instrument": instrument.pk, "start": local(slot[0]), "end": local(slot[1])})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'value="{local(slot[0])}"' in body and f'value="{local(slot[1])}"' in body
    assert 'type="datetime-local"' in body
    assert "Asia/Shanghai" in body and 'data-testid="zone-explainer"' in body
    assert world.lab_a.name_zh in body


def test_anonymous_visitors_are_sent_to_log_in_before_the_form(world, instrument):
    response = client_for().get(reverse("bookings:new"), {"instrument": instrument.pk})
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_booking_through_the_form_redirects_to_the_booking_page(world, instrument, slot):
    client = client_for(world.researcher)
    response = form_post(client, instrument, *slot, lab=world.lab_a.pk)
    booking = Booking.objects.get()
    assert response.status_code == 302 and response.url == reverse("bookings:detail", args=[booking.pk])
    assert (booking.start, booking.end, booking.charged_lab) == (slot[0], slot[1], world.lab_a)
    page = client.get(response.url).content.decode()
    assert 'data-state="confirmed"' in page and "Booked." in page


def test_form_times_are_read_in_the_instruments_zone_not_the_servers(world):
    berlin = make_instrument(world, name="柏林", zone="Europe/Berlin")
    start = next_weekday(2, 10, zone=berlin.zone)
    form_post(client_for(world.researcher), berlin, start, start + dt.timedelta(hours=1), lab=world.lab_a.pk)
    assert Booking.objects.get().start == start.astimezone(dt.UTC)


def test_a_time_in_the_dst_gap_is_a_form_error(world):
    berlin = make_instrument(world, name="柏林", zone="Europe/Berlin", hours=[(day, 0, 24 * 60) for day in range(7)],
                             policy={"horizon_days": 730})
    today = dt.date.today()
    year = today.year + 1
    march_31 = dt.date(year, 3, 31)
    gap_day = march_31 - dt.timedelta(days=(march_31.weekday() + 1) % 7)  # last Sunday of March
    response = client_for(world.researcher).post(f"{reverse('bookings:new')}?instrument={berlin.pk}", {
        "start": f"{gap_day}T02:30", "end": f"{gap_day}T04:00", "purpose": "x", "lab": world.lab_a.pk})
    assert response.status_code == 200
    errors = re.search(r'data-testid="field-errors">(.*?)</ul>', response.content.decode(), re.S).group(1)
    assert "Europe/Berlin" in errors
    assert not Booking.objects.exists()


@pytest.mark.parametrize("shift,length,text", [
    (dt.timedelta(minutes=10), dt.timedelta(hours=1), "30-minute grid"),
    (dt.timedelta(hours=-3), dt.timedelta(hours=2), "not open for the whole of that time"),
    (dt.timedelta(0), dt.timedelta(hours=9), "at most 480 minutes"),
    (dt.timedelta(0), dt.timedelta(hours=-1), "must end after it starts"),
])
def test_rule_violations_are_shown_as_form_errors(world, instrument, slot, shift, length, text):
    start = slot[0] + shift
    response = form_post(client_for(world.researcher), instrument, start, start + length, lab=world.lab_a.pk)
    assert response.status_code == 200
    assert text in form_errors(response)
    assert not Booking.objects.exists()


def test_a_slot_taken_by_my_own_booking_says_it_is_mine(world, instrument, slot):
    mine = book(world.researcher, instrument, *slot)
    response = form_post(client_for(world.researcher), instrument, *slot, lab=world.lab_a.pk)
    errors = form_errors(response)
    assert "You already have a booking at that time" in errors and f"#{mine.pk}" in errors
    assert "just taken" not in errors


def test_a_taken_slot_says_it_was_just_taken(world, instrument, slot):
    book(world.researcher, instrument, *slot)
    response = form_post(client_for(world.other_researcher), instrument, *slot, lab=world.lab_b.pk)
    errors = form_errors(response)
    assert "just taken" in errors
    assert f"{slot[0]:%Y-%m-%d %H:%M}" in errors
    assert Booking.objects.count() == 1


def test_a_lab_that_is_not_yours_cannot_be_charged(world, instrument, slot):
    response = form_post(client_for(world.researcher), instrument, *slot, lab=world.lab_b.pk)
    assert response.status_code == 200 and 'data-testid="field-errors"' in response.content.decode()
    assert not Booking.objects.exists()


def test_the_chinese_form_speaks_chinese(world, instrument, slot):
    client = client_for(world.researcher)
    client.cookies.load({"django_language": "zh-hans"})
    response = client.get(reverse("bookings:new"), {"instrument": instrument.pk})
    assert '<html lang="zh-hans"' in response.content.decode()


# --- one booking ---------------------------------------------------------------------------------


def test_a_booking_page_is_for_its_booker_and_the_lab_only(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    url = reverse("bookings:detail", args=[booking.pk])
    assert client_for(world.researcher).get(url).status_code == 200
    assert client_for(world.manager).get(url).status_code == 200
    assert client_for(world.other_researcher).get(url).status_code == 404
    assert client_for(world.other_manager).get(url).status_code == 404
    assert client_for().get(url).status_code == 302


def test_another_researcher_cannot_cancel_a_booking(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    response = client_for(world.other_researcher).post(reverse("bookings:cancel", args=[booking.pk]))
    assert response.status_code == 404
    booking.refresh_from_db()
    assert booking.state == Booking.State.CONFIRMED


def test_the_booker_cancels_from_the_booking_page(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    client = client_for(world.researcher)
    response = client.post(reverse("bookings:cancel", args=[booking.pk]), {"next": reverse("bookings:mine")})
    assert response.status_code == 302 and response.url == reverse("bookings:mine")
    booking.refresh_from_db()
    assert booking.state == Booking.State.CANCELLED


def test_the_lab_must_give_a_reason_to_cancel(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    client = client_for(world.manager)
    response = client.post(reverse("bookings:cancel", args=[booking.pk]), follow=True)
    assert "Please give a reason." in response.content.decode()
    booking.refresh_from_db()
    assert booking.state == Booking.State.CONFIRMED
    client.post(reverse("bookings:cancel", args=[booking.pk]), {"reason": "Detector repair"})
    booking.refresh_from_db()
    assert (booking.state, booking.reason) == (Booking.State.CANCELLED, "Detector repair")


def test_rescheduling_moves_the_booking_and_refusals_show_on_the_page(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    book(world.other_researcher, instrument, slot[0] + dt.timedelta(days=1))
    client = client_for(world.researcher)
    url = reverse("bookings:reschedule", args=[booking.pk])
    taken = slot[0] + dt.timedelta(days=1)
    response = client.post(url, {"start": local(taken), "end": local(taken + dt.timedelta(hours=2))})
    assert response.status_code == 200 and "just taken" in form_errors(response)
    later = slot[0] + dt.timedelta(hours=4)
    response = client.post(url, {"start": local(later), "end": local(later + dt.timedelta(hours=2))})
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.start == later and booking.sequence == 1


# --- my bookings, feeds --------------------------------------------------------------------------


def test_my_bookings_lists_upcoming_ones_with_state_and_cancel_buttons(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    book(world.other_researcher, instrument, slot[0] + dt.timedelta(days=1))
    response = client_for(world.researcher).get(reverse("bookings:mine"))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('data-testid="booking-row"') == 1 and f'data-booking="{booking.pk}"' in body
    assert 'data-state="confirmed"' in body and 'data-testid="cancel-booking"' in body


def test_a_feed_link_is_shown_once_listed_and_revoked(world, instrument, slot):
    book(world.researcher, instrument, *slot)
    client = client_for(world.researcher)
    response = client.post(reverse("bookings:create_feed"), {"scope": "mine"})
    url = re.search(r'data-testid="feed-url">([^<]+)<', response.content.decode()).group(1)
    assert url.startswith("http://testserver/bookings/feeds/") and url.endswith(".ics")
    feed = client_for().get(url.removeprefix("http://testserver"))
    assert feed.status_code == 200 and b"BEGIN:VCALENDAR" in feed.content
    page = client.get(reverse("bookings:mine")).content.decode()
    assert page.count('data-testid="feed-row"') == 1 and url not in page
    token = FeedToken.objects.get()
    client.post(reverse("bookings:revoke_feed", args=[token.pk]))
    assert client_for().get(url.removeprefix("http://testserver")).status_code == 404


def test_someone_elses_feed_link_cannot_be_revoked(world):
    client = client_for(world.researcher)
    client.post(reverse("bookings:create_feed"), {"scope": "mine"})
    token = FeedToken.objects.get()
    assert client_for(world.other_researcher).post(reverse("bookings:revoke_feed", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_only_a_labs_manager_gets_its_feed_link(world):
    response = client_for(world.other_manager).post(reverse("bookings:create_feed"),
                                                    {"scope": "lab", "lab": world.lab_a.pk}, follow=True)
    assert not FeedToken.objects.exists()
    assert response.status_code == 200


# --- the lab queue -------------------------------------------------------------------------------


@pytest.fixture
def approval_instrument(world):
    return make_instrument(world, name="透射电镜", policy={"approval": "all"})


def test_the_lab_queue_lists_pending_bookings_for_the_labs_managers(world, approval_instrument, slot):
    booking = book(world.other_researcher, approval_instrument, *slot)
    assert booking.state == Booking.State.PENDING
    response = client_for(world.manager).get(reverse("bookings:lab_queue"))
    assert response.status_code == 200
    assert f'data-booking="{booking.pk}"' in response.content.decode()
    other = client_for(world.other_manager).get(reverse("bookings:lab_queue"))
    assert f'data-booking="{booking.pk}"' not in other.content.decode()
    other_lab = client_for(world.other_manager).get(reverse("bookings:lab_queue"), {"lab": world.lab_a.pk})
    assert f'data-booking="{booking.pk}"' not in other_lab.content.decode()


def test_researchers_have_no_lab_queue(world):
    assert client_for(world.researcher).get(reverse("bookings:lab_queue")).status_code == 404


def test_the_manager_approves_and_rejects_with_a_reason(world, approval_instrument, slot):
    first = book(world.other_researcher, approval_instrument, *slot)
    second = book(world.researcher, approval_instrument, slot[0] + dt.timedelta(days=1))
    client = client_for(world.manager)
    assert client.post(reverse("bookings:approve", args=[first.pk])).status_code == 302
    response = client.post(reverse("bookings:reject", args=[second.pk]), {"reason": ""}, follow=True)
    assert "Please give a reason." in response.content.decode()
    client.post(reverse("bookings:reject", args=[second.pk]), {"reason": "Sample holder broken"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == Booking.State.CONFIRMED
    assert (second.state, second.reason) == (Booking.State.REJECTED, "Sample holder broken")


def test_another_labs_manager_gets_404_on_queue_actions(world, approval_instrument, slot):
    booking = book(world.other_researcher, approval_instrument, *slot)
    client = client_for(world.other_manager)
    assert client.post(reverse("bookings:approve", args=[booking.pk])).status_code == 404
    assert client.post(reverse("bookings:reject", args=[booking.pk]), {"reason": "no"}).status_code == 404
    assert client.post(reverse("bookings:cancel", args=[booking.pk]), {"reason": "no"}).status_code == 404
    booking.refresh_from_db()
    assert booking.state == Booking.State.PENDING


def test_the_lab_calendar_shows_booker_names_to_its_managers_only(world, approval_instrument, slot):
    booking = book(world.other_researcher, approval_instrument, *slot)
    url = reverse("bookings:lab_events", args=[world.lab_a.pk])
    params = {"start": (slot[0] - dt.timedelta(days=1)).replace(tzinfo=None).isoformat(),
              "end": (slot[0] + dt.timedelta(days=1)).replace(tzinfo=None).isoformat()}
    events = client_for(world.manager).get(url, params).json()
    assert [e["title"] for e in events] == [f"{approval_instrument.name_zh} · {world.other_researcher.display_name}"]
    assert events[0]["url"] == reverse("bookings:detail", args=[booking.pk])
    for outsider in (world.other_manager, world.researcher, None):
        assert client_for(outsider).get(url, params).status_code == 404


# --- CSRF ----------------------------------------------------------------------------------------


def test_writes_without_a_csrf_token_are_refused(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    client = client_for(world.researcher, enforce_csrf_checks=True)
    new = f"{reverse('bookings:new')}?instrument={instrument.pk}"
    later = slot[0] + dt.timedelta(days=1)
    posts = [
        (new, {"start": local(later), "end": local(later + dt.timedelta(hours=1)), "purpose": "x"}),
        (reverse("bookings:cancel", args=[booking.pk]), {}),
        (reverse("bookings:reschedule", args=[booking.pk]), {"start": local(later), "end": local(later)}),
        (reverse("bookings:create_feed"), {"scope": "mine"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    booking.refresh_from_db()
    assert booking.state == Booking.State.CONFIRMED and Booking.objects.count() == 1
    assert not FeedToken.objects.exists()


def test_writes_are_post_only(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    client = client_for(world.researcher)
    for name in ("cancel", "approve", "reject", "reschedule"):
        assert client.get(reverse(f"bookings:{name}", args=[booking.pk])).status_code == 405
    booking.refresh_from_db()
    assert booking.state == Booking.State.CONFIRMED


def test_next_never_leads_off_site(world, instrument, slot):
    booking = book(world.researcher, instrument, *slot)
    response = client_for(world.researcher).post(reverse("bookings:cancel", args=[booking.pk]),
                                                 {"next": "https://evil.example/"})
    assert response.url == reverse("bookings:detail", args=[booking.pk])


def test_the_instrument_page_links_to_its_week_calendar(world, instrument):
    response = client_for().get(f"/instruments/{instrument.pk}/")
    assert response.status_code == 200
    assert reverse("bookings:calendar", args=[instrument.pk]) in response.content.decode()
