import datetime as dt

import pytest
from django.test import Client
from icalendar import Calendar

from bookings import services
from bookings.models import UserCredit
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Forbidden
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db


def _book(world, instrument, user, day=1, hour=10):
    start = next_weekday(day, hour)
    return services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                   end=start + dt.timedelta(hours=1), purpose="secret project Z")


def test_a_private_feed_lists_my_bookings_and_stops_when_revoked(world, api_as, instrument):
    kept = _book(world, instrument, world.researcher)
    cancelled = _book(world, instrument, world.researcher, hour=14)
    services.cancel_booking(actor=world.researcher, booking_id=cancelled.pk)
    api = api_as(world.researcher)
    created = api.post("/me/feeds", {"scope": "mine"}).json()
    path = created["url"].split("://", 1)[1].split("/", 1)[1]
    response = Client().get(f"/{path}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    assert "REFRESH-INTERVAL" in calendar
    statuses = {str(e["UID"]).split("@")[0]: str(e["STATUS"]) for e in calendar.walk("VEVENT")}
    assert statuses == {str(kept.uid): "CONFIRMED", str(cancelled.uid): "CANCELLED"}
    assert api.post(f"/me/feeds/{created['id']}/revoke").json()["revoked_at"]
    assert Client().get(f"/{path}").status_code == 404


def test_the_public_instrument_feed_has_no_personal_data(world, instrument):
    _book(world, instrument, world.researcher)
    response = Client().get(f"/bookings/feeds/instrument/{instrument.pk}.ics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "secret project Z" not in text and world.researcher.email not in text and "Researcher" not in text
    assert text.count("BEGIN:VEVENT") == 1


def test_a_lab_feed_is_only_for_the_labs_managers(world, api_as, instrument):
    _book(world, instrument, world.researcher)
    assert api_as(world.researcher).post("/me/feeds", {"scope": "lab", "lab_id": world.lab_a.pk}).status_code == 403
    created = api_as(world.manager).post("/me/feeds", {"scope": "lab", "lab_id": world.lab_a.pk}).json()
    path = created["url"].split("://", 1)[1].split("/", 1)[1]
    assert Client().get(f"/{path}").content.count(b"BEGIN:VEVENT") == 1


def test_no_shows_lower_the_credit_until_booking_is_refused_and_the_bureau_lifts_it(world, instrument):
    for day in range(5):
        booking = _book(world, instrument, world.researcher, day=day, hour=8)
        no_show = [(booking.pk, world.researcher.pk)]
        services.settle(completed=[], no_shows=no_show, now=booking.end + dt.timedelta(hours=1))
        services.settle(completed=[], no_shows=no_show, now=booking.end + dt.timedelta(hours=2))  # idempotent
    assert services.credit_score(world.researcher) == 50
    with pytest.raises(Forbidden) as refused:
        _book(world, instrument, world.researcher, day=1, hour=14)
    assert refused.value.code == "credit_too_low"
    with pytest.raises(Forbidden):
        services.lift_ban(actor=world.manager, user=world.researcher, reason="x")
    services.lift_ban(actor=world.bureau, user=world.researcher, reason="appeal accepted")
    assert UserCredit.objects.get(user=world.researcher).score == 60
    assert AuditEvent.objects.filter(action="credit.ban_lifted", actor=world.bureau).exists()
    _book(world, instrument, world.researcher, day=1, hour=14)


def test_quota_per_user_per_week(world):
    from tests.bookings.conftest import make_instrument

    instrument = make_instrument(world, name="配额", policy={"max_hours_per_user_week": 2})
    _book(world, instrument, world.researcher, day=1, hour=9)
    _book(world, instrument, world.researcher, day=2, hour=9)
    with pytest.raises(Forbidden) as error:
        _book(world, instrument, world.researcher, day=3, hour=9)
    assert error.value.code == "quota_exceeded"
    _book(world, instrument, world.other_researcher, day=3, hour=9)
