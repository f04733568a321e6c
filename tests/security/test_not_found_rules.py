"""What the caller may not see is a 404, in every form it can be asked for (issue 18, items 10 and 12)."""

import datetime as dt

import pytest
from django.urls import reverse

from catalog import services as catalog_services
from catalog.models import Qualification
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.django_db


def test_another_labs_bookings_are_not_found_not_an_empty_list(world, api_as):
    make_instrument(world)
    assert api_as(world.other_manager).get(f"/bookings?scope=lab&lab_id={world.lab_a.pk}").status_code == 404
    assert api_as(world.manager).get(f"/bookings?scope=lab&lab_id={world.lab_a.pk}").status_code == 200


def test_another_labs_downtime_through_ones_own_instrument_is_not_found(world, client):
    mine = make_instrument(world)
    theirs = make_instrument(world, lab=world.lab_b, manager=world.other_manager, name="质谱仪")
    start = next_weekday(2, 10)
    downtime = catalog_services.add_downtime(actor=world.other_manager, instrument_id=theirs.pk, start=start,
                                             end=start + dt.timedelta(hours=1), kind="planned", reason="theirs")
    client.force_login(world.manager)
    response = client.post(reverse("catalog:cancel_downtime",
                                   kwargs={"instrument_id": mine.pk, "downtime_id": downtime.pk}))
    assert response.status_code == 404
    assert theirs.downtimes.filter(pk=downtime.pk).exists()


def test_a_revocation_needs_a_reason(world, api_as):
    instrument = make_instrument(world)
    qualification = catalog_services.grant_qualification(actor=world.manager, instrument_id=instrument.pk,
                                                         user=world.other_researcher)
    for body in ({}, {"reason": "  "}):
        response = api_as(world.manager).post(f"/qualifications/{qualification.pk}/revoke", body)
        assert (response.status_code, response.json()["code"]) == (422, "reason_required")
    assert Qualification.objects.get(pk=qualification.pk).revoked_at is None
    assert api_as(world.manager).post(f"/qualifications/{qualification.pk}/revoke",
                                      {"reason": "left the group"}).status_code == 200
    assert Qualification.objects.get(pk=qualification.pk).revoked_at is not None
