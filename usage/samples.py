"""What a completed sample request produces (``submissions.extensions.completion_parts``): one billable
item per line of its accepted quote, priced at the amount agreed there, and one service record of way
``sample`` in the national platform's shape. Billing charges the items like any other (at month close,
once: the items' state and the unique (request, line) key), and the national export reads the record.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from bookings import services as booking_services
from instrumentshare.core.money import HUNDRED, ZERO, money

from .models import BillableItem, SampleWorkHold, ServiceRecord

UNITS = {"sample": BillableItem.Unit.SAMPLE, "analysis": BillableItem.Unit.ANALYSIS, "item": BillableItem.Unit.USE}


def agreed_amounts(quote) -> list[tuple[object, Decimal]]:
    """Each quote line with its share of the quote's total: the discount applied line by line, and the last
    line takes the cent that rounding leaves over, so the lines always add up to the total agreed."""
    lines = list(quote.items.all())
    factor = (HUNDRED - quote.discount_percent) / HUNDRED
    shares = [money(line.amount * factor) for line in lines]
    if shares:
        shares[-1] += quote.total - sum(shares, ZERO)
    return list(zip(lines, shares, strict=True))


class SampleCompletion:
    @staticmethod
    def completed(*, request, now: dt.datetime) -> dict:
        if BillableItem.objects.filter(sample_request=request).exists():
            return {}   # completed before: billed once
        samples = request.received_count if request.received_count is not None else request.sample_count
        start = request.received_at or request.submitted_at
        common = {"sample_request": request, "instrument": request.instrument, "user": request.requester,
                  "lab_id": request.charged_lab_id, "is_internal": request.is_internal,
                  "kind": BillableItem.Kind.SAMPLE, "charge_mode": "per_sample", "samples": samples,
                  "service_start": now, "service_end": now, "created_at": now, "updated_at": now}
        items = [BillableItem.objects.create(line=number, unit=UNITS.get(line.unit, BillableItem.Unit.USE),
                                             quantity=line.quantity, agreed_amount=share, **common)
                 for number, (line, share) in enumerate(agreed_amounts(request.quote), start=1)]
        if request.scheduled_start and request.scheduled_end:
            hours = Decimal((request.scheduled_end - request.scheduled_start).total_seconds() / 3600)
        else:
            hours = ZERO
        record = ServiceRecord.objects.create(
            item=items[0], instrument=request.instrument, user=request.requester,
            applicant_organization_id=request.requester.organization_id, way=ServiceRecord.Way.SAMPLE,
            is_internal=request.is_internal, start=start, end=now, hours=money(hours), samples=samples,
            created_at=now)
        return {"billable_item_ids": [item.pk for item in items], "service_record_id": record.pk}

    @staticmethod
    def rated(*, request, now: dt.datetime) -> None:
        ServiceRecord.objects.filter(item__sample_request=request, rating__isnull=True).update(
            rating=request.rating, rated_at=now)


class SampleWorkTime:
    """``submissions.extensions.work_time``: a request's scheduled work holds the instrument's time as a
    booking in state ``held`` (``bookings.services.hold_time``), so the exclusion constraint, availability,
    search and the calendars treat it exactly as a booking; a taken time is the bookings' 409."""

    @staticmethod
    def hold(*, request, actor, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict:
        link = SampleWorkHold.objects.select_for_update().filter(request=request).first()
        booking = booking_services.hold_time(
            actor=actor, instrument_id=request.instrument_id, start=start, end=end, now=now,
            purpose=f"送样 #{request.pk} · Sample request #{request.pk}",
            replaces_booking_id=link.booking_id if link else None)
        if link is None:
            SampleWorkHold.objects.create(request=request, booking=booking)
        else:
            link.booking = booking
            link.save(update_fields=["booking"])
        return {"held_booking_id": booking.pk}

    @staticmethod
    def release(*, request, actor, now: dt.datetime) -> None:
        link = SampleWorkHold.objects.filter(request=request).first()
        if link is not None:
            booking_services.release_hold(actor=actor, booking_id=link.booking_id, now=now)
