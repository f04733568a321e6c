"""The bounded time type: one range for every moment a client may send, and a safe range for every
moment a page may show.

**Accepted**: a datetime the API or a form accepts lies in ``EARLIEST`` .. ``LATEST`` (2000-01-01 to
2100-12-31, UTC); a date in ``EARLIEST_DATE`` .. ``LATEST_DATE`` (from 1950, so an old instrument's
purchase date still fits). Outside, the API answers 422 naming the field and a form shows the error
beside it. ``BoundedDateTime`` and ``BoundedDate`` (``core.schemas``) and ``BoundedDateTimeField``
and ``BoundedDateField`` (forms, here) are the only types that say so; tests/architecture holds every input to them.

**Shown**: a value already stored outside that range (written before the rule, or by hand) must not
break a page: converting year 9999 to Asia/Shanghai overflows. Every model ``DateTimeField`` of ours
is a ``SafeDateTimeField``, which reads such a value as the nearest moment that any zone can show.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _

UTC = dt.UTC
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC)
EARLIEST_DATE = dt.date(1950, 1, 1)
LATEST_DATE = dt.date(2100, 12, 31)
# Any zone's offset is under a day, so these convert everywhere without overflow.
SHOWABLE_MIN = dt.datetime.min.replace(tzinfo=UTC) + dt.timedelta(days=2)
SHOWABLE_MAX = dt.datetime.max.replace(tzinfo=UTC) - dt.timedelta(days=2)

# The longest plausible span of each kind of thing. A usage session (logger events, logbook rows) is
# refused when longer; one stored before the rule (or by hand) counts as this long in the statistics.
# Bookings are bounded by their instrument's policy (maximum duration), downtime by the date bounds.
MAX_DURATION = {
    "usage_session": dt.timedelta(days=7),
}

OUT_OF_RANGE = "must be between 2000-01-01 and 2100-12-31 (UTC)"
DATE_OUT_OF_RANGE = "must be between 1950-01-01 and 2100-12-31"


def is_within_bounds(value: dt.datetime) -> bool:
    """An aware value is compared as it is; a naive one (read later in an instrument's zone) with a
    day's margin either way, so that no zone moves it out of range."""
    if value.tzinfo is None or value.utcoffset() is None:
        return EARLIEST.replace(tzinfo=None) + dt.timedelta(days=1) <= value <= \
            LATEST.replace(tzinfo=None) - dt.timedelta(days=1)
    return EARLIEST <= value <= LATEST


def bounded_datetime(value: dt.datetime) -> dt.datetime:
    if not is_within_bounds(value):
        raise ValueError(OUT_OF_RANGE)
    return value


def bounded_date(value: dt.date) -> dt.date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(DATE_OUT_OF_RANGE)
    return value


def showable(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` moved into the range every zone can convert (an aware value; None stays None)."""
    if value is None or value.tzinfo is None:
        return value
    return min(max(value, SHOWABLE_MIN), SHOWABLE_MAX)


class BoundedDateTimeField(forms.DateTimeField):
    """A form's datetime: the accepted range, or the error beside the field."""

    def validate(self, value):
        super().validate(value)
        if value is not None and not is_within_bounds(value):
            raise forms.ValidationError(_("Enter a time between 2000-01-01 and 2100-12-31."), code="out_of_range")


class BoundedDateField(forms.DateField):
    """A form's date: the accepted range, or the error beside the field."""

    def validate(self, value):
        super().validate(value)
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise forms.ValidationError(_("Enter a date between 1950-01-01 and 2100-12-31."), code="out_of_range")


class SafeDateTimeField(models.DateTimeField):
    """A model's datetime that reads any stored value as one the pages can show (see the module).

    It is a ``DateTimeField`` in the database and in migrations (``deconstruct`` says so), so
    adopting it changes no schema.
    """

    def from_db_value(self, value, expression, connection):
        return showable(value) if isinstance(value, dt.datetime) else value

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DateTimeField", args, kwargs
