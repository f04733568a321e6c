"""The iCalendar text we write by hand, read back with the icalendar library: escaping, folding, UTC times."""

import datetime as dt
import zoneinfo

import pytest
from django.conf import settings
from django.test import Client
from icalendar import Calendar

from bookings import ical, queries
from bookings import services as feeds
from bookings.models import Booking
from tests.bookings.conftest import make_instrument

pytestmark = pytest.mark.django_db

AWKWARD = 'Cryo-EM; grids 1,2 and 3\\4\r\nsecond line\nthird "line" with ^caret, ' + "很长的中文说明" * 12
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def _booking(world, instrument, start, *, hours=2, purpose="x", state=Booking.State.CONFIRMED) -> Booking:
    return Booking.objects.create(instrument=instrument, user=world.researcher, start=start,
                                  end=start + dt.timedelta(hours=hours),
                                  blocked_until=start + dt.timedelta(hours=hours), purpose=purpose, state=state)


def _feed(world, *, now) -> bytes:
    _token, plain = feeds.create_feed_token(user=world.researcher)
    return queries.private_feed(plain, now=now).body


def _lines_are_folded(body: bytes) -> None:
    for line in body.split(b"\r\n"):
        assert len(line) <= 75
        line.decode()  # never cut inside a character
    assert b"\n" not in body.replace(b"\r\n", b"")


def test_awkward_text_reads_back_as_it_was_written(world):
    world.lab_a.name_en = 'Lab "A", cryo; EM'
    world.lab_a.save()
    world.researcher.full_name = 'Zhang "Z"; San, 张三'
    world.researcher.save()
    instrument = make_instrument(world, name="超高分辨冷冻电子显微镜系统（三百千伏，配能量过滤器与直接电子探测器）",
                                 address="科学城大道 1 号, 楼 A; 二层", room="B-201")
    start = dt.datetime(2030, 5, 7, 2, 0, tzinfo=dt.UTC)
    booking = _booking(world, instrument, start, purpose=AWKWARD)
    body = _feed(world, now=start)
    _lines_are_folded(body)
    [event] = Calendar.from_ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == f"仪器预约 Instrument booking: {instrument.name_zh} / {instrument.name_en}"
    assert str(event["LOCATION"]) == "科学城大道 1 号, 楼 A; 二层 B-201"
    assert str(event["DESCRIPTION"]) == AWKWARD.replace("\r\n", "\n") + f"\n{settings.SITE_URL}/bookings/{booking.pk}/"
    assert event["ORGANIZER"].params["CN"] == '甲实验室 / Lab "A", cryo; EM'
    assert event["ATTENDEE"].params["CN"] == 'Zhang "Z"; San, 张三'
    assert str(event["ATTENDEE"]) == f"mailto:{world.researcher.email}"
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert str(event["UID"]) == f"{booking.uid}@instrumentshare"


def test_times_are_utc_on_both_sides_of_a_daylight_saving_change(world):
    instrument = make_instrument(world, name="质谱仪", zone="America/New_York")
    # 2030-03-10 is the spring-forward Sunday in New York: 09:00 local is EDT on the 11th, EST on the 9th.
    before = _booking(world, instrument, dt.datetime(2030, 3, 9, 9, 0, tzinfo=NEW_YORK))
    after = _booking(world, instrument, dt.datetime(2030, 3, 11, 9, 0, tzinfo=NEW_YORK))
    body = _feed(world, now=before.start)
    events = {str(e["UID"]).split("@")[0]: e for e in Calendar.from_ical(body).walk("VEVENT")}
    for booking in (before, after):
        event = events[str(booking.uid)]
        assert event.decoded("DTSTART") == booking.start and event.decoded("DTSTART").utcoffset() == dt.timedelta(0)
        assert event.decoded("DTEND") == booking.end
    assert b"DTSTART:20300309T140000Z" in body and b"DTSTART:20300311T130000Z" in body


def test_an_unchanged_feed_is_the_same_bytes_and_a_change_shows(world, instrument):
    start = dt.datetime(2030, 5, 7, 2, 0, tzinfo=dt.UTC)
    booking = _booking(world, instrument, start, state=Booking.State.PENDING)
    _token, plain = feeds.create_feed_token(user=world.researcher)
    first = queries.private_feed(plain, now=start).body
    assert queries.private_feed(plain, now=start + dt.timedelta(minutes=5)).body == first
    [event] = Calendar.from_ical(first).walk("VEVENT")
    assert str(event["STATUS"]) == "TENTATIVE" and event["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"
    booking.state, booking.sequence = Booking.State.CONFIRMED, 1
    booking.save()
    [event] = Calendar.from_ical(queries.private_feed(plain, now=start).body).walk("VEVENT")
    assert str(event["STATUS"]) == "CONFIRMED" and int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTAMP") == event.decoded("LAST-MODIFIED") >= booking.created_at.replace(microsecond=0)


def test_the_public_feed_says_busy_and_nothing_else(world, instrument):
    start = dt.datetime(2030, 5, 7, 2, 0, tzinfo=dt.UTC)
    _booking(world, instrument, start, purpose=AWKWARD)
    body = queries.public_instrument_feed(instrument, now=start).body
    [event] = Calendar.from_ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == "已预约 Booked" and str(event["TRANSP"]) == "OPAQUE"
    assert "ATTENDEE" not in event and "DESCRIPTION" not in event and b"Cryo" not in body


def test_fold_keeps_every_line_within_75_octets_and_unfolds_to_the_original():
    for line in ("SUMMARY:" + "a" * 200, "SUMMARY:" + "中" * 100, "X:" + "a" * 73 + "中文" * 40, "SHORT:ok",
                 "X:" + "😀" * 50):
        folded = ical.fold(line)
        assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
        assert folded.replace("\r\n ", "") == line


def test_the_feed_url_serves_the_calendar(world, api_as):
    created = api_as(world.researcher).post("/me/feeds", {"scope": "mine"}).json()
    path = created["url"].split("://", 1)[1].split("/", 1)[1]
    response = Client().get(f"/{path}")
    assert response.status_code == 200
    assert response.content.startswith(b"BEGIN:VCALENDAR\r\n") and response.content.endswith(b"END:VCALENDAR\r\n")


def test_a_calendar_polling_an_unchanged_feed_gets_not_modified(world, api_as, instrument):
    created = api_as(world.researcher).post("/me/feeds", {"scope": "mine"}).json()
    path = "/" + created["url"].split("://", 1)[1].split("/", 1)[1]
    booking = _booking(world, instrument, dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
                       + dt.timedelta(days=3))
    first = Client().get(path)
    assert first.status_code == 200 and first["ETag"] and first.content.count(b"BEGIN:VEVENT") == 1
    again = Client().get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    booking.purpose = "changed"
    booking.save()
    changed = Client().get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and b"changed" in changed.content and changed["ETag"] != first["ETag"]


def test_the_public_feed_has_uids_of_its_own_and_drops_what_no_longer_holds_time(world, instrument):
    start = dt.datetime(2030, 5, 7, 2, 0, tzinfo=dt.UTC)
    kept = _booking(world, instrument, start)
    _booking(world, instrument, start + dt.timedelta(hours=3), state=Booking.State.CANCELLED)
    _booking(world, instrument, start + dt.timedelta(hours=6), state=Booking.State.REJECTED)
    public = Calendar.from_ical(queries.public_instrument_feed(instrument, now=start).body)
    uids = [str(event["UID"]) for event in public.walk("VEVENT")]
    assert uids == [f"busy-{kept.uid}@instrumentshare"]   # never the booking's own UID; the cancelled one is gone
    _token, plain = feeds.create_feed_token(user=world.researcher)
    private = Calendar.from_ical(queries.private_feed(plain, now=start).body)
    assert not set(uids) & {str(event["UID"]) for event in private.walk("VEVENT")}


def test_feeds_answer_head_and_conditional_requests_with_etag_and_last_modified(world, instrument):
    _booking(world, instrument, dt.datetime.now(dt.UTC) + dt.timedelta(days=3))   # inside the feed's window
    url = f"/bookings/feeds/instrument/{instrument.pk}.ics"
    full = Client().get(url)
    head = Client().head(url)
    assert full.status_code == head.status_code == 200 and head.content == b""
    assert head["ETag"] == full["ETag"] and head["Last-Modified"] == full["Last-Modified"]
    assert head["Content-Length"] == str(len(full.content))
    assert Client().get(url, HTTP_IF_NONE_MATCH=full["ETag"]).status_code == 304
    assert Client().head(url, HTTP_IF_MODIFIED_SINCE=full["Last-Modified"]).status_code == 304
    assert Client().post(url).status_code == 405
