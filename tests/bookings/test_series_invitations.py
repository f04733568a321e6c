"""A series' invitations (one per occurrence, see docs/architecture.md "Invitations of a series") parse in
icalendar and vobject, and a real CalDAV server (Radicale, on loopback) stores them and finds each
occurrence at 09:00 Berlin time on both sides of the clock change."""

import base64
import datetime as dt
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zoneinfo
from xml.etree import ElementTree

import icalendar
import pytest
import vobject

from bookings import ical, services
from tests.bookings.conftest import make_instrument
from tests.bookings.test_series import NOW

pytestmark = pytest.mark.django_db

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
FIRST = dt.datetime(2027, 3, 16, 9, 0, tzinfo=BERLIN)   # Tuesdays; Europe's clocks go forward on 28 March


@pytest.fixture
def berlin_series(world):
    instrument = make_instrument(world, zone="Europe/Berlin", name="Berlin SEM")
    result = services.create_series(user=world.researcher, instrument_id=instrument.pk, start=FIRST,
                                    end=FIRST + dt.timedelta(hours=2), purpose="weekly course, group B",
                                    frequency="WEEKLY", count=4, now=NOW)
    return list(result.series.occurrences.select_related("instrument__lab", "user").order_by("start"))


def test_each_occurrence_is_an_invitation_of_its_own_that_icalendar_and_vobject_read(berlin_series):
    uids = set()
    for booking in berlin_series:
        body = ical.invitation(booking, "REQUEST", now=NOW)
        parsed = icalendar.Calendar.from_ical(body)
        (event,) = parsed.walk("VEVENT")
        assert str(parsed["METHOD"]) == "REQUEST"
        assert event.decoded("DTSTART").astimezone(BERLIN).time() == dt.time(9, 0)
        assert event.decoded("DTEND") - event.decoded("DTSTART") == dt.timedelta(hours=2)
        card = vobject.readOne(body.decode())
        assert card.method.value == "REQUEST"
        assert card.vevent.uid.value == str(event["UID"])
        assert card.vevent.dtstart.value.astimezone(BERLIN).time() == dt.time(9, 0)
        uids.add(card.vevent.uid.value)
    assert len(uids) == 4
    # In UTC the two sides of the change differ by the hour the clocks moved.
    assert [b.start.hour for b in berlin_series] == [8, 8, 7, 7]


def test_a_cancelled_occurrence_is_a_cancel_of_its_own_uid_with_a_higher_sequence(world, berlin_series):
    third = berlin_series[2]
    services.cancel_series(actor=world.researcher, series_id=third.series_id, scope="one", booking_id=third.pk,
                           now=NOW)
    third.refresh_from_db()
    cancel = ical.invitation(third, "CANCEL", now=NOW)
    card = vobject.readOne(cancel.decode())
    (event,) = icalendar.Calendar.from_ical(cancel).walk("VEVENT")
    assert card.method.value == "CANCEL" and card.vevent.status.value == "CANCELLED"
    assert str(event["UID"]) == ical.uid_of(third) and int(event["SEQUENCE"]) == 1


def test_each_occurrence_is_mailed_with_its_local_time_and_a_link_to_the_series(berlin_series):
    from bookings.models import Notification
    from bookings.services.notifications import build_message

    fourth = berlin_series[3]
    message = build_message(Notification.objects.get(booking=fourth, kind="invitation"), now=NOW)
    assert "2027-04-06 09:00 – 11:00 (Europe/Berlin)" in message.body
    assert f"/bookings/series/{fourth.series_id}/" in message.body
    assert message.to == [fourth.user.email]


# --- Radicale -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def caldav(tmp_path):
    """A Radicale server on loopback, storing under tmp_path; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}", "--auth-type", "none",
         "--rights-type", "owner_only", "--storage-filesystem-folder", str(tmp_path / "collections"),
         "--logging-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"Radicale did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def _dav(method: str, url: str, body: bytes = b"", **headers) -> tuple[int, bytes]:
    auth = base64.b64encode(b"researcher:any").decode()
    request = urllib.request.Request(url, data=body or None, method=method,
                                     headers={"Authorization": f"Basic {auth}", **headers})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _stored(invitation: bytes) -> bytes:
    """What a calendar client stores of an invitation: the calendar without its iTIP METHOD (RFC 4791 4.1)."""
    return b"".join(line for line in invitation.splitlines(keepends=True) if not line.startswith(b"METHOD:"))


def _query(url: str, start: str, end: str) -> list[icalendar.Event]:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>""".encode()
    status, answer = _dav("REPORT", url, body, Depth="1", **{"Content-Type": "application/xml"})
    assert status == 207, answer
    events = []
    for data in ElementTree.fromstring(answer).iter("{urn:ietf:params:xml:ns:caldav}calendar-data"):
        events += icalendar.Calendar.from_ical(data.text).walk("VEVENT")
    return sorted(events, key=lambda event: event.decoded("DTSTART"))


def test_radicale_stores_the_series_and_finds_each_occurrence_at_its_local_time(berlin_series, caldav):
    collection = f"{caldav}/researcher/bookings/"
    status, answer = _dav("MKCALENDAR", collection)
    assert status == 201, answer
    for booking in berlin_series:
        status, answer = _dav("PUT", f"{collection}{booking.uid}.ics",
                              _stored(ical.invitation(booking, "REQUEST", now=NOW)),
                              **{"Content-Type": "text/calendar; charset=utf-8"})
        assert status == 201, answer

    events = _query(collection, "20270301T000000Z", "20270501T000000Z")
    local = [event.decoded("DTSTART").astimezone(BERLIN) for event in events]
    assert [(t.date().isoformat(), t.strftime("%H:%M %Z")) for t in local] == [
        ("2027-03-16", "09:00 CET"), ("2027-03-23", "09:00 CET"), ("2027-03-30", "09:00 CEST"),
        ("2027-04-06", "09:00 CEST")]
    # The server's own time-range test agrees: 07:00 UTC is 09:00 in summer time only.
    assert [e.decoded("DTSTART").date() for e in _query(collection, "20270330T070000Z", "20270330T071500Z")] \
        == [dt.date(2027, 3, 30)]
    assert _query(collection, "20270323T070000Z", "20270323T071500Z") == []
