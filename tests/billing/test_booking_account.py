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
    assert Booking.objects.get(pk=created.json()["id"]).billing_account.account == billing.lab_a
    refused = _book(api_as(world.other_researcher), billing.instrument, account_id=billing.lab_a.pk)
    assert refused.status_code == 403 and refused.json()["code"] == "account_not_allowed"


def _project(world, number, **validity):
    from billing import services as billing_services

    return billing_services.create_account(actor=world.finance, kind="project", organization=world.org_a,
                                           number=number, name=number, pi=world.manager, **validity)


def test_an_account_is_checked_on_the_day_of_use_not_on_the_day_of_booking(world, billing):
    # Regression: the account was checked on the real "today", so a project ending on 31 December could be
    # charged for January's use, and a grant starting on 1 January could not be booked against in December.
    from bookings import services as booking_services
    from instrumentshare.core.errors import Forbidden
    from tests.billing.conftest import SHANGHAI

    ending = _project(world, "ENDS-2026", valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    starting = _project(world, "FROM-2027", valid_from=dt.date(2027, 1, 1), valid_until=dt.date(2027, 12, 31))
    now = dt.datetime(2026, 12, 28, 16, tzinfo=SHANGHAI)
    january = dt.datetime(2027, 1, 5, 10, tzinfo=SHANGHAI)            # a Tuesday
    december = dt.datetime(2026, 12, 30, 10, tzinfo=SHANGHAI)        # a Wednesday

    def book(start, account):
        return booking_services.create_booking(user=world.manager, instrument_id=billing.instrument.pk, start=start,
                                               end=start + dt.timedelta(hours=1), purpose="x",
                                               extras={"account_id": account.pk}, now=now)

    with pytest.raises(Forbidden) as refused:
        book(january, ending)
    assert refused.value.extra["reason"] == "expired"
    assert book(january, starting).billing_account.account == starting
    in_december = book(december, ending)
    with pytest.raises(Forbidden) as moved:
        booking_services.reschedule_booking(actor=world.manager, booking_id=in_december.pk,
                                            start=january + dt.timedelta(days=1),
                                            end=january + dt.timedelta(days=1, hours=1), now=now)
    assert moved.value.extra["reason"] == "expired"
    with pytest.raises(Forbidden):
        book(december + dt.timedelta(hours=2), starting)
