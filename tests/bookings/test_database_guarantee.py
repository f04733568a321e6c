"""The database itself refuses overlapping active bookings (PostgreSQL exclusion constraint)."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from bookings.models import Booking
from tests.bookings.conftest import make_instrument, next_weekday
from tests.conftest import requires_postgres


@requires_postgres
@pytest.mark.django_db
def test_the_exclusion_constraint_refuses_a_raw_overlapping_insert(world):
    instrument = make_instrument(world)
    start = next_weekday(1, 10)
    fields = {"instrument": instrument, "user": world.researcher, "purpose": "x", "state": "confirmed"}
    Booking.objects.create(start=start, end=start + dt.timedelta(hours=2),
                           blocked_until=start + dt.timedelta(hours=2), **fields)
    with pytest.raises(IntegrityError, match="booking_no_overlap"), transaction.atomic():
        Booking.objects.create(start=start + dt.timedelta(hours=1), end=start + dt.timedelta(hours=3),
                               blocked_until=start + dt.timedelta(hours=3), **fields)
    # cancelled rows do not hold time; back-to-back rows are fine
    Booking.objects.create(start=start + dt.timedelta(hours=1), end=start + dt.timedelta(hours=3),
                           blocked_until=start + dt.timedelta(hours=3), **{**fields, "state": "cancelled"})
    Booking.objects.create(start=start + dt.timedelta(hours=2), end=start + dt.timedelta(hours=3),
                           blocked_until=start + dt.timedelta(hours=3), **fields)
