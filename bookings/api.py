"""Bookings API: create, list, read, cancel, approve, reject, reschedule; availability; feed tokens; waiting lists."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from django.conf import settings
from django.http import HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import ModelWrapValidatorHandler, ValidationInfo, model_validator

from catalog import queries as catalog_queries
from instrumentshare.accounts.auth import PUBLIC_AUTH, UserRateThrottle
from instrumentshare.core.errors import Invalid, NotFound
from instrumentshare.core.schemas import BoundedDate, BoundedDateTime, StrictSchema

from . import queries, services
from .models import Booking, BookingSeries, FeedToken, WaitlistEntry
from .services.series import MAX_INTERVAL, MAX_OCCURRENCES, SeriesResult

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

    @model_validator(mode="wrap")
    @classmethod
    def _run_root_validator(cls, values, handler: ModelWrapValidatorHandler, info: ValidationInfo):
        """Every booking answer (one, or a page of them) is read from the booking into a dict here, which
        pydantic validates in its own code; ninja's wrapper (replaced, by name) would look each of the 17
        fields up through a ``DjangoGetter``, a twentieth of a booking request's CPU."""
        return handler(values if isinstance(values, dict) else cls.fields_of(values))

    @staticmethod
    def fields_of(booking: Booking) -> dict:
        instrument = booking.instrument
        return {
            "id": booking.pk, "instrument_id": booking.instrument_id, "instrument_name_zh": instrument.name_zh,
            "instrument_name_en": instrument.name_en, "time_zone": instrument.time_zone, "user_id": booking.user_id,
            "charged_lab_id": booking.charged_lab_id,
            # Billing's fact (bookings.extensions.booking_parts), read by the handler before it answers: a
            # query here would run while the response is serialized, outside the API's error mapping.
            "account_id": booking.part_facts.get("account_id"),
            "start": booking.start, "end": booking.end, "state": booking.state, "purpose": booking.purpose,
            "is_internal": booking.is_internal, "sequence": booking.sequence,
            "late_cancellation": booking.late_cancellation, "reason": booking.reason,
            "created_at": booking.created_at,
        }


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


Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


class SeriesIn(StrictSchema):
    instrument_id: int
    start: BoundedDateTime = Field(..., description="The first occurrence's start, with an offset; the series "
                                                    "repeats its wall-clock time in the instrument's zone")
    end: BoundedDateTime = Field(..., description="The first occurrence's end")
    purpose: str = Field(..., min_length=1, max_length=2000)
    frequency: Literal["DAILY", "WEEKLY"] = Field(..., description="RFC 5545 FREQ")
    interval: int = Field(1, ge=1, le=MAX_INTERVAL, description="RFC 5545 INTERVAL: every n days or weeks")
    weekdays: list[Weekday] = Field([], max_length=7, description="RFC 5545 BYDAY, weekly only; the first "
                                                                  "occurrence must fall on one of them")
    count: int | None = Field(None, ge=1, le=MAX_OCCURRENCES, description="How many occurrences (or until)")
    until: BoundedDate | None = Field(None, description="The last day, in the instrument's zone (or count)")
    lab_id: int | None = Field(None, description="The lab to charge; default: the booker's first lab")
    account_id: int | None = Field(None, description="The billing account to charge")
    dry_run: bool = Field(False, description="Check every occurrence and book nothing (answer 200)")
    book_available: bool = Field(False, description="Book the occurrences that pass and leave out the others; "
                                                    "without it, one that fails books nothing (409)")


class SeriesCancelIn(StrictSchema):
    scope: Literal["one", "following", "all"]
    booking_id: int | None = Field(None, description="The occurrence for one / following")
    reason: str = Field("", max_length=2000)


class OccurrenceOut(Schema):
    start: datetime
    end: datetime
    ok: bool = Field(..., description="Booked, or bookable in a dry run")
    state: str = Field(..., description="The booking's state; '' when not booked")
    booking_id: int | None
    code: str = Field(..., description="Why it cannot be booked (a single booking's error code), or ''")
    detail: str
    conflict: dict | None = Field(None, description="The interval in the way, for slot_taken")


class SeriesOut(Schema):
    id: int | None = Field(..., description="None in a dry run")
    dry_run: bool
    instrument_id: int
    time_zone: str
    rrule: str = Field(..., description="The RFC 5545 RRULE value")
    purpose: str
    occurrences: list[OccurrenceOut] = Field(..., description="Every occurrence of the rule, in order: booked "
                                                              "(any state) or left out with the reason")


class SeriesListParams(Schema):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class SeriesList(Schema):
    count: int
    items: list[SeriesOut]


class NewFeedOut(FeedOut):
    url: str = Field(..., description="Shown once: subscribe to it in a calendar app.")


def _out(booking: Booking) -> Booking:
    """The booking with its part facts: those the service already knows (a new booking), else read."""
    return booking if hasattr(booking, "part_facts") else queries.with_part_facts([booking])[0]


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


def _series_out(series: BookingSeries) -> dict:
    occurrences = [{"start": booking.start, "end": booking.end, "ok": True, "state": booking.state,
                    "booking_id": booking.pk, "code": "", "detail": "", "conflict": None}
                   for booking in series.occurrences.all()]
    occurrences += [{**item, "ok": False, "state": "", "booking_id": None} for item in series.skipped]
    occurrences.sort(key=lambda item: datetime.fromisoformat(str(item["start"])) if isinstance(item["start"], str)
                     else item["start"])
    return {"id": series.pk, "dry_run": False, "instrument_id": series.instrument_id, "time_zone": series.time_zone,
            "rrule": series.rrule, "purpose": series.purpose, "occurrences": occurrences}


def _visible_series(request, series_id: int) -> BookingSeries:
    series = queries.series_with_occurrences().filter(pk=series_id).first()
    if series is None or not services.can_see_series(request.auth, series):
        raise NotFound("not_found", "No such series.")
    return series


def _preview_out(result: SeriesResult, payload: SeriesIn) -> dict:
    return {"id": None, "dry_run": True, "instrument_id": payload.instrument_id, "time_zone": result.time_zone,
            "rrule": result.rrule,
            "purpose": payload.purpose, "occurrences": [occurrence.as_dict() for occurrence in result.occurrences]}


@router.post("/booking-series", response={200: SeriesOut, 201: SeriesOut},
             summary="Book a recurring series (dry_run: check each occurrence, book nothing)",
             throttle=[UserRateThrottle("RATE_LIMIT_BOOKINGS")])
def create_series(request, payload: SeriesIn):
    result = services.create_series(
        user=request.auth, instrument_id=payload.instrument_id, start=payload.start, end=payload.end,
        purpose=payload.purpose, frequency=payload.frequency, interval=payload.interval, weekdays=payload.weekdays,
        count=payload.count, until=payload.until, lab_id=payload.lab_id, extras={"account_id": payload.account_id},
        dry_run=payload.dry_run, book_available=payload.book_available)
    if result.dry_run:
        return Status(200, _preview_out(result, payload))
    return Status(201, _series_out(queries.series_with_occurrences().get(pk=result.series.pk)))


@router.get("/booking-series", response=SeriesList, summary="My booking series")
def list_series(request, params: Query[SeriesListParams]):
    rows = queries.series_with_occurrences().filter(user=request.auth).order_by("-created_at", "-id")
    return {"count": rows.count(),
            "items": [_series_out(series) for series in rows[params.offset: params.offset + params.limit]]}


@router.get("/booking-series/{series_id}", response=SeriesOut, summary="One booking series and its occurrences")
def get_series(request, series_id: int):
    return _series_out(_visible_series(request, series_id))


@router.post("/booking-series/{series_id}/cancel", response=SeriesOut,
             summary="Cancel one occurrence, this one and the following, or all (each under the usual rules)")
def cancel_series(request, series_id: int, payload: SeriesCancelIn):
    services.cancel_series(actor=request.auth, series_id=series_id, scope=payload.scope,
                           booking_id=payload.booking_id, reason=payload.reason)
    return _series_out(_visible_series(request, series_id))


@router.get("/instruments/{instrument_id}/availability", response=AvailabilityOut, auth=PUBLIC_AUTH,
            summary="Free intervals (UTC) of an instrument between start and end")
def instrument_availability(request, instrument_id: int, start: BoundedDateTime, end: BoundedDateTime):
    start, end = queries.checked_range(start, end)
    instrument = catalog_queries.instrument_with_policy(instrument_id)
    if instrument is None or not catalog_queries.can_see(request.auth, instrument):
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


# --- waiting lists --------------------------------------------------------------------------------


class WaitlistIn(StrictSchema):
    instrument_id: int
    start: BoundedDateTime = Field(..., description="The taken slot's start, or the window's, with an offset")
    end: BoundedDateTime = Field(..., description="The taken slot's end, or the window's")
    minutes: int | None = Field(None, ge=1, le=20160,
                                description="Any this many minutes inside the window; default: the whole slot")
    purpose: str = Field(..., min_length=1, max_length=2000)
    lab_id: int | None = Field(None, description="The lab to charge when booked; default: the booker's first lab")


class AcceptIn(StrictSchema):
    account_id: int | None = Field(None, description="The billing account to charge, as when booking")


class WaitlistEntryOut(Schema):
    id: int
    instrument_id: int
    instrument_name_zh: str
    time_zone: str
    start: datetime
    end: datetime
    minutes: int
    purpose: str
    state: str = Field(..., description="waiting, offered, booked, declined, lapsed (offer expired), left, ended")
    created_at: datetime
    offer_start: datetime | None
    offer_end: datetime | None
    offer_expires_at: datetime | None = Field(None, description="Accept before this moment, or it goes to the next")
    booking_id: int | None

    @staticmethod
    def resolve_instrument_name_zh(obj: WaitlistEntry) -> str:
        return obj.instrument.name_zh

    @staticmethod
    def resolve_time_zone(obj: WaitlistEntry) -> str:
        return obj.instrument.time_zone


def _entry_out(entry: WaitlistEntry) -> WaitlistEntry:
    return queries.my_waitlist(entry.user).get(pk=entry.pk)


class WaitlistParams(Schema):
    limit: int = Field(50, ge=1, le=200)


@router.get("/waitlist", response=list[WaitlistEntryOut], summary="My waiting-list entries (open ones first)")
def list_waitlist(request, params: Query[WaitlistParams]):
    return list(queries.my_waitlist(request.auth)[:params.limit])


@router.post("/waitlist", response={201: WaitlistEntryOut}, summary="Join an instrument's waiting list",
             description="For a taken slot, or (with `minutes`) for any that long inside [start, end). 409 "
                         "`time_free` when such time is free now (book it), `already_waiting`, `waitlist_limit`.",
             throttle=[UserRateThrottle("RATE_LIMIT_BOOKINGS")])
def join_waitlist(request, payload: WaitlistIn):
    entry = services.join_waitlist(user=request.auth, instrument_id=payload.instrument_id, start=payload.start,
                                   end=payload.end, minutes=payload.minutes, purpose=payload.purpose,
                                   lab_id=payload.lab_id)
    return Status(201, _entry_out(entry))


@router.get("/waitlist/{entry_id}", response=WaitlistEntryOut, summary="One of my waiting-list entries")
def get_waitlist_entry(request, entry_id: int):
    entry = queries.my_waitlist(request.auth).filter(pk=entry_id).first()
    if entry is None:
        raise NotFound("not_found", "No such waiting-list entry.")
    return entry


@router.post("/waitlist/{entry_id}/leave", response=WaitlistEntryOut, summary="Leave the waiting list",
             description="An open offer is released to the next in line.")
def leave_waitlist(request, entry_id: int):
    return _entry_out(services.leave_waitlist(user=request.auth, entry_id=entry_id))


@router.post("/waitlist/{entry_id}/accept", response={201: BookingOut}, summary="Accept an offer: book the time",
             description="Booked through the same checks as `POST /bookings`. 409 `offer_expired` when the offer "
                         "lapsed or was declined.", throttle=[UserRateThrottle("RATE_LIMIT_BOOKINGS")])
def accept_offer(request, entry_id: int, payload: AcceptIn | None = None):
    booking = services.accept_offer(user=request.auth, entry_id=entry_id,
                                    extras={"account_id": payload.account_id if payload else None})
    return Status(201, _out(booking))


@router.post("/waitlist/{entry_id}/decline", response=WaitlistEntryOut, summary="Decline an offer",
             description="The time goes to the next in line; the entry ends.")
def decline_offer(request, entry_id: int):
    return _entry_out(services.decline_offer(user=request.auth, entry_id=entry_id))
