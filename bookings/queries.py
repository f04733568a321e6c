"""Reads about bookings, shared by pages, the API and feeds."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import QuerySet

from instrumentshare.accounts import queries as people
from instrumentshare.core.errors import Invalid

from .models import Booking


def bookings() -> QuerySet[Booking]:
    return Booking.objects.select_related("instrument", "instrument__lab", "user", "charged_lab")


def my_bookings(user) -> QuerySet[Booking]:
    return bookings().filter(user=user)


def lab_bookings(user, lab_id: int | None = None) -> QuerySet[Booking]:
    lab_ids = people.managed_lab_ids(user)
    if lab_id is not None:
        lab_ids = lab_ids & {lab_id}
    return bookings().filter(instrument__lab_id__in=lab_ids)


def pending_approvals(user) -> QuerySet[Booking]:
    return lab_bookings(user).filter(state=Booking.State.PENDING).order_by("start")


def visible_bookings(user) -> QuerySet[Booking]:
    if people.is_platform_admin(user):
        return bookings()
    from django.db.models import Q

    return bookings().filter(Q(user=user) | Q(instrument__lab_id__in=people.managed_lab_ids(user)))


def checked_range(start: dt.datetime, end: dt.datetime, *, max_days: int | None = None) -> tuple:
    """A query range with an offset, start before end, no longer than the configured limit."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise Invalid("naive_datetime", f"{name} must carry a time zone offset.")
    if start >= end:
        raise Invalid("invalid_range", "start must be before end.")
    limit = max_days or settings.MAX_QUERY_RANGE_DAYS
    if end - start > dt.timedelta(days=limit):
        raise Invalid("range_too_long", f"Ask for at most {limit} days at a time.")
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def public_busy(instrument, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Busy times without personal data: active bookings and downtime."""
    rows = list(Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES, start__lt=end,
                                       end__gt=start).values_list("start", "end"))
    rows += list(instrument.downtimes.filter(start__lt=end, end__gt=start).values_list("start", "end"))
    return sorted(rows)
