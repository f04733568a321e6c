"""A booking can only name a billing account its booker may charge."""

import datetime as dt

import pytest

from bookings.models import Booking
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db


def _book(api, instrument, **extra):
    start = next_weekday(1, 10)
    return api.post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                  "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "x", **extra})


def test_the_default_account_is_the_lab_cost_centre_and_another_labs_is_refused(world, api_as, billing):
    created = _book(api_as(world.researcher), billing.instrument)
    assert created.status_code == 201
    assert Booking.objects.get(pk=created.json()["id"]).account == billing.lab_a
    refused = _book(api_as(world.other_researcher), billing.instrument, account_id=billing.lab_a.pk)
    assert refused.status_code == 403 and refused.json()["code"] == "account_not_allowed"
