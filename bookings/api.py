"""Bookings API: create, list, read, cancel, approve, reject, reschedule; availability; feed tokens."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts.auth import PUBLIC_AUTH, UserRateThrottle
from instrumentshare.core.errors import Invalid, NotFound
from instrumentshare.core.schemas import BoundedDateTime, StrictSchema

from . import queries, services
from .models import Booking, FeedToken

router = Router(tags=["bookings"])


class BookingIn(StrictSchema):
    instrument_id: int
    start: BoundedDateTime = Field(..., description="With an offset, e.g. 2026-12-01T09:00:00+08:00")
    end: BoundedDateTime
    purpose: str = Field(..., min_length=1, max_length=2000)
    lab_id: int | None = Field(None, description="The lab to charge; default: the booker's first lab")
    account_id: int | None = Field(None, description="The billing account to charge; default: the booker's "
                                                      "lab cost centre or company payer account")


class RescheduleIn(StrictSchema):
    start: BoundedDateTime
    end: BoundedDateTime


class ReasonIn(StrictSchema):
    reason: str = Field("", max_length=2000)


class BookingOut(Schema):
    id: int
    instrument_id: int
    instrument_name_zh: str
    instrument_name_en: str
    time_zone: str
    user_id: int
    charged_lab_id: int | None
    account_id: int | None
    start: datetime
    end: datetime
    state: str
    purpose: str
    is_internal: bool
    sequence: int
    late_cancellation: bool
    reason: str
    created_at: datetime

    @staticmethod
    def resolve_instrument_name_zh(obj: Booking) -> str:
        return obj.instrument.name_zh

    @staticmethod
    def resolve_instrument_name_en(obj: Booking) -> str:
        return obj.instrument.name_en

    @staticmethod
    def resolve_time_zone(obj: Booking) -> str:
        return obj.instrument.time_zone

    @staticmethod
    def resolve_account_id(obj: Booking) -> int | None:
        # Billing's fact (bookings.extensions.booking_parts), read by the handler before it answers: a
        # query here would run while the response is serialized, outside the API's error mapping.
        return obj.part_facts.get("account_id")


class EstimateOut(Schema):
    amount: Decimal = Field(..., description="The charge if used as booked, before any voucher")
    currency: str
    to_pay: Decimal = Field(..., description="The amount less the voucher share")
    voucher_share: Decimal
    user_class: str
    charge_mode: str
    unit: str
    quantity: Decimal = Field(..., description="Hours (after minimum minutes and rounding), samples or uses")
    unit_price: Decimal
    minimum_applied: bool
    rate_card_id: int
    valid_from: date
    late_cancel_percent: int
    cancellation_window_hours: int


class BookingList(Schema):
    count: int
    items: list[BookingOut]


class ListParams(Schema):
    scope: str = Field("mine", pattern="^(mine|lab)$")
    lab_id: int | None = None
    state: str | None = Field(None, pattern="^(pending|confirmed|rejected|cancelled|completed|no_show)$")
    start: BoundedDateTime | None = None
    end: BoundedDateTime | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class IntervalOut(Schema):
    start: datetime
    end: datetime


class AvailabilityOut(Schema):
    instrument_id: int
    time_zone: str
    start: datetime
    end: datetime
    free: list[IntervalOut]
    busy: list[IntervalOut]


class FeedIn(StrictSchema):
    scope: str = Field("mine", pattern="^(mine|lab)$")
    lab_id: int | None = None


class FeedOut(Schema):
    id: int
    scope: str
    lab_id: int | None
    created_at: datetime
    revoked_at: datetime | None


class NewFeedOut(FeedOut):
    url: str = Field(..., description="Shown once: subscribe to it in a calendar app.")


def _out(booking: Booking) -> Booking:
    return queries.with_part_facts([booking])[0]


def _visible_booking(request, booking_id: int) -> Booking:
    booking = queries.bookings().filter(pk=booking_id).first()
    if booking is None or not services.can_see_booking(request.auth, booking):
        raise NotFound("not_found", "No such booking.")
    return booking


@router.post("/bookings", response={201: BookingOut}, summary="Book an instrument",
             throttle=[UserRateThrottle("RATE_LIMIT_BOOKINGS")])
def create_booking(request, payload: BookingIn):
    booking = services.create_booking(user=request.auth, instrument_id=payload.instrument_id, start=payload.start,
                                      end=payload.end, purpose=payload.purpose, lab_id=payload.lab_id,
                                      extras={"account_id": payload.account_id})
    return Status(201, _out(booking))


@router.get("/bookings", response=BookingList, summary="My bookings, or a lab's for its managers")
def list_bookings(request, params: Query[ListParams]):
    user = request.auth
    rows = queries.my_bookings(user) if params.scope == "mine" else queries.lab_bookings(user, params.lab_id)
    if params.state:
        rows = rows.filter(state=params.state)
    if params.start and params.end:
        start, end = queries.checked_range(params.start, params.end, max_days=3660)
        rows = rows.filter(start__lt=end, end__gt=start)
    rows = rows.order_by("-start", "-id")
    return {"count": rows.count(),
            "items": queries.with_part_facts(list(rows[params.offset: params.offset + params.limit]))}


@router.get("/bookings/estimate", response={200: EstimateOut, 204: None},
            summary="What a booking would cost (204 when no rate card applies)")
def estimate(request, instrument_id: int, start: BoundedDateTime, end: BoundedDateTime):
    instrument = queries.visible_instrument(request.auth, instrument_id)
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("naive_datetime", "start and end must carry a time zone offset.")
    if start >= end:
        raise Invalid("invalid_range", "The booking must end after it starts.")
    answer = queries.cost_estimate(user=request.auth, instrument=instrument, start=start, end=end)
    return answer if answer is not None else Status(204, None)


@router.get("/bookings/{booking_id}", response=BookingOut, summary="One booking")
def get_booking(request, booking_id: int):
    return _out(_visible_booking(request, booking_id))


@router.post("/bookings/{booking_id}/cancel", response=BookingOut, summary="Cancel (the booker, or the lab)")
def cancel_booking(request, booking_id: int, payload: ReasonIn | None = None):
    return _out(services.cancel_booking(actor=request.auth, booking_id=booking_id,
                                        reason=payload.reason if payload else ""))


@router.post("/bookings/{booking_id}/approve", response=BookingOut, summary="Approve a pending booking")
def approve_booking(request, booking_id: int):
    return _out(services.approve_booking(actor=request.auth, booking_id=booking_id))


@router.post("/bookings/{booking_id}/reject", response=BookingOut, summary="Reject a pending booking")
def reject_booking(request, booking_id: int, payload: ReasonIn):
    return _out(services.reject_booking(actor=request.auth, booking_id=booking_id, reason=payload.reason))


@router.patch("/bookings/{booking_id}", response=BookingOut, summary="Reschedule: same booking, new time")
def reschedule_booking(request, booking_id: int, payload: RescheduleIn):
    return _out(services.reschedule_booking(actor=request.auth, booking_id=booking_id, start=payload.start,
                                            end=payload.end))


@router.get("/instruments/{instrument_id}/availability", response=AvailabilityOut, auth=PUBLIC_AUTH,
            summary="Free intervals (UTC) of an instrument between start and end")
def instrument_availability(request, instrument_id: int, start: BoundedDateTime, end: BoundedDateTime):
    start, end = queries.checked_range(start, end)
    instrument = get_object_or_404(Instrument.objects.select_related("policy"), pk=instrument_id)
    if not catalog_queries.can_see(request.auth, instrument):
        raise NotFound("not_found", "No such instrument.")
    body = queries.availability_json(instrument, start, end)
    if body is not None:  # PostgreSQL wrote it (the same as below: tests/bookings/test_free_time_paths.py)
        return HttpResponse(body, content_type="application/json; charset=utf-8")
    free, busy = queries.free_and_busy(instrument, start, end)
    return {
        "instrument_id": instrument.pk, "time_zone": instrument.time_zone, "start": start, "end": end,
        "free": [{"start": a, "end": b} for a, b in free],
        "busy": [{"start": a, "end": b} for a, b in busy],
    }


@router.get("/me/feeds", response=list[FeedOut], summary="My calendar feed links (never their secret)")
def list_feeds(request):
    return list(FeedToken.objects.filter(user=request.auth).order_by("-created_at")[:100])


@router.post("/me/feeds", response={201: NewFeedOut}, summary="Create a private calendar feed link")
def create_feed(request, payload: FeedIn):
    token, plain = services.create_feed_token(user=request.auth, scope=payload.scope, lab_id=payload.lab_id)
    url = f"{settings.SITE_URL}/bookings/feeds/{plain}.ics"
    return Status(201, {**FeedOut.from_orm(token).model_dump(), "url": url})


@router.post("/me/feeds/{feed_id}/revoke", response=FeedOut, summary="Revoke a feed link")
def revoke_feed(request, feed_id: int):
    return services.revoke_feed_token(user=request.auth, feed_id=feed_id)
