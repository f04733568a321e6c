import datetime as dt

import pytest
from django.test import Client

from bookings import services
from instrumentshare.audit.services import seal_pending
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db


def test_a_user_downloads_what_the_platform_holds_about_them(world, api_as, instrument):
    start = next_weekday(1, 10)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                            end=start + dt.timedelta(hours=1), purpose="my own project")
    response = api_as(world.researcher).get("/me/export")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = response.json()
    assert data["profile"]["username"] == "researcher"
    assert [b["purpose"] for b in data["bookings"]] == ["my own project"]
    assert any(e["action"] == "booking.created_confirmed" for e in data["audit_events_by_me"])
    other = api_as(world.other_researcher).get("/me/export").json()
    assert other["bookings"] == [] and "my own project" not in str(other)
    assert api_as(None).get("/me/export").status_code == 401


def test_the_audit_trail_shows_others_personal_data_only_to_the_bureau(world, api_as, instrument):
    start = next_weekday(1, 10)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                            end=start + dt.timedelta(hours=1), purpose="x")
    mine = api_as(world.researcher).get("/audit/events").json()
    assert mine["count"] >= 1 and {e["actor_id"] for e in mine["items"]} == {world.researcher.pk}
    others = api_as(world.other_researcher).get("/audit/events", {"action": "booking.created_confirmed"}).json()
    assert others["count"] == 0
    everything = api_as(world.bureau).get("/audit/events", {"action": "booking.created_confirmed"}).json()
    assert everything["count"] == 1
    assert api_as(None).get("/audit/events").status_code == 401


def test_the_seal_head_is_public(world, instrument):
    seal_pending()
    head = Client().get("/api/v1/audit/head").json()
    assert head["seal_seq"] > 0 and len(head["seal_hash"]) == 64
