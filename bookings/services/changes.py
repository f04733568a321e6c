"""What a change to an instrument does to its bookings: the bookings app's part of ``catalog.impact``.

``BookingChanges.affected`` names the open bookings, not yet started, that the instrument's rules as they
now stand would refuse (the change is already written in the caller's transaction, so one set of rules
serves a dry run and the real thing); ``settle`` cancels them through the lifecycle (the lab's move of
``bookings.transitions``: CANCEL invitation, no penalty) or keeps them, flagged for their bookers.
"""

from __future__ import annotations

import datetime as dt

from catalog.impact import AffectedBooking
from catalog.models import Downtime, Instrument
from instrumentshare.core.errors import DomainError

from .. import availability
from ..models import Booking
from ..transitions import OPEN
from .lifecycle import cancel_for_change
from .rules import check_may_book


def _why_refused(booking: Booking, instrument: Instrument, opening, downtime, may_book: dict) -> str:
    if booking.user_id not in may_book:
        try:
            check_may_book(booking.user, instrument)
        except DomainError as error:
            may_book[booking.user_id] = "not_qualified" if error.code == "not_qualified" else "not_bookable"
        else:
            may_book[booking.user_id] = ""
    if may_book[booking.user_id]:
        return may_book[booking.user_id]
    if any(start < booking.end and booking.start < end for start, end in downtime):
        return "downtime"
    if not any(start <= booking.start and booking.end <= end for start, end in opening):
        return "closed"
    minutes = booking.duration_minutes
    if not instrument.policy.min_minutes <= minutes <= instrument.policy.max_minutes:
        return "duration"
    return ""


class BookingChanges:
    @staticmethod
    def affected(*, instrument: Instrument, now: dt.datetime, user_id: int | None = None) -> list[AffectedBooking]:
        bookings = Booking.objects.filter(instrument_id=instrument.pk, state__in=OPEN, start__gt=now)
        if user_id is not None:
            bookings = bookings.filter(user_id=user_id)
        bookings = list(bookings.select_related("user").order_by("start", "id"))
        if not bookings:
            return []
        first, last = bookings[0].start, max(booking.end for booking in bookings)
        instrument = Instrument.objects.select_related("policy", "lab").get(pk=instrument.pk)  # as now written
        opening = availability.opening_intervals(instrument, first, last)
        downtime = list(Downtime.objects.filter(instrument_id=instrument.pk, start__lt=last, end__gt=first)
                        .values_list("start", "end"))
        may_book: dict[int, str] = {}
        result = []
        for booking in bookings:
            why = _why_refused(booking, instrument, opening, downtime, may_book)
            if why:
                result.append(AffectedBooking(id=booking.pk, user_id=booking.user_id, booker=booking.user.username,
                                              start=booking.start, end=booking.end, state=booking.state, why=why))
        return result

    @staticmethod
    def settle(*, actor, affected: list[AffectedBooking], decision: str, notice: str, now: dt.datetime) -> None:
        ids = [booking.id for booking in affected]
        if decision == "cancel":
            for booking_id in ids:
                cancel_for_change(actor=actor, booking_id=booking_id, reason=notice, now=now)
        else:
            Booking.objects.filter(pk__in=ids).update(flag=notice[:2000], flagged_at=now)
