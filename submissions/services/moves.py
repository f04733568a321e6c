"""The work on a request, one move at a time, each following ``submissions.transitions``: quote,
accept or decline, receive, schedule, start, deliver, complete, cancel, reject.

Each locks the request row, returns early when the request already is where the move leads (so a
retried call changes nothing), refuses the wrong side (403) and the wrong state (409), and writes the
audit record and a history row whose e-mail goes out after commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from instrumentshare.core.errors import Conflict, DomainError, Invalid
from instrumentshare.core.money import HUNDRED, ZERO, money

from ..extensions import completion_parts, work_time
from ..models import Attachment, Quote, QuoteItem, SampleRequest
from ..transitions import MOVES
from .common import check_side, is_lab, is_requester_side, locked_request, moved, snapshot
from .requests import service_of

State = SampleRequest.State


def _begin(actor, request_id: int, name: str) -> tuple[SampleRequest, bool]:
    """The locked request and whether it already is where the move leads (then nothing is done)."""
    request = locked_request(actor, request_id)
    move = MOVES[name]
    check_side(actor, request, move)
    if request.state == move.target:
        return request, True
    move.check(request)
    return request, False


def _local_today(request: SampleRequest, now: dt.datetime) -> dt.date:
    return now.astimezone(request.instrument.zone).date()


@dataclass(frozen=True)
class ItemIn:
    description: str
    quantity: int
    unit_price: Decimal
    unit: str = QuoteItem.Unit.SAMPLE
    analysis_id: int | None = None


@transaction.atomic
def quote_request(*, actor, request_id: int, items: list[ItemIn], valid_until: dt.date,
                  discount_percent: Decimal = ZERO, note: str = "", now: dt.datetime | None = None) -> SampleRequest:
    """The lab's offer: items per sample or per analysis, a discount, valid until a day (in the instrument's zone)."""
    now = now or timezone.now()
    request, done = _begin(actor, request_id, "quote")
    if done:
        return request
    if not items:
        raise Invalid("items_required", "A quote has at least one item.")
    if valid_until < _local_today(request, now):
        raise Invalid("invalid_validity", "A quote is valid until today or later.")
    discount = Decimal(discount_percent)
    if not ZERO <= discount <= HUNDRED:
        raise Invalid("invalid_discount", "A discount is between 0 and 100 percent.")
    offered = set(request.analyses.values_list("pk", flat=True))
    rows = []
    for item in items:
        if item.quantity < 1 or Decimal(item.unit_price) < 0 or not item.description.strip():
            raise Invalid("invalid_item", "Each item has a description, a quantity of at least 1 and a price of 0 "
                                          "or more.")
        if item.analysis_id is not None and item.analysis_id not in offered:
            raise Invalid("unknown_analysis", "An item names an analysis the request did not ask for.")
        if item.unit not in QuoteItem.Unit.values:
            raise Invalid("invalid_unit", f"The unit is one of {', '.join(QuoteItem.Unit.values)}.")
        rows.append(QuoteItem(description=item.description.strip()[:300], quantity=item.quantity,
                              unit_price=money(item.unit_price), unit=item.unit, analysis_id=item.analysis_id,
                              amount=money(Decimal(item.quantity) * Decimal(item.unit_price))))
    subtotal = sum((row.amount for row in rows), ZERO)
    total = money(subtotal * (HUNDRED - discount) / HUNDRED)
    before = snapshot(request)
    quote = Quote.objects.create(request=request, valid_until=valid_until, discount_percent=discount,
                                 subtotal=subtotal, total=total, note=(note or "").strip()[:2000], created_by=actor,
                                 created_at=now)
    for row in rows:
        row.quote = quote
    QuoteItem.objects.bulk_create(rows)
    return moved(request, MOVES["quote"], actor=actor, before=before, now=now, note=note,
                 quote={"total": str(total), "valid_until": valid_until.isoformat(), "items": len(rows)})


def _decide(actor, request_id: int, name: str, now: dt.datetime, reason: str = "") -> SampleRequest:
    request, done = _begin(actor, request_id, name)
    if done:
        return request
    quote = request.quote
    if name == "accept" and quote.valid_until < _local_today(request, now):
        raise Conflict("quote_expired", f"The quote was valid until {quote.valid_until}; ask the lab for a new one.")
    before = snapshot(request)
    quote.decided_by, quote.decided_at = actor, now
    quote.save(update_fields=["decided_by", "decided_at"])
    if reason:
        request.reason = reason.strip()[:2000]
    return moved(request, MOVES[name], actor=actor, before=before, now=now, reason=reason,
                 quote_total=str(quote.total))


@transaction.atomic
def accept_quote(*, actor, request_id: int, now: dt.datetime | None = None) -> SampleRequest:
    """The requester (or whoever decides for the account: the project's PI, the company's finance) accepts."""
    return _decide(actor, request_id, "accept", now or timezone.now())


@transaction.atomic
def decline_quote(*, actor, request_id: int, reason: str = "", now: dt.datetime | None = None) -> SampleRequest:
    return _decide(actor, request_id, "decline", now or timezone.now(), reason)


def _receive(actor, request_id: int, received_count: int | None, discrepancy: str, now: dt.datetime) -> SampleRequest:
    request, done = _begin(actor, request_id, "receive")
    if done:
        return request
    received_count = request.sample_count if received_count is None else received_count
    if received_count < 0:
        raise Invalid("invalid_count", "The count received cannot be negative.")
    discrepancy = (discrepancy or "").strip()
    if received_count != request.sample_count and not discrepancy:
        raise Invalid("discrepancy_required", f"{received_count} samples received of {request.sample_count} "
                                              "announced: note the discrepancy.")
    before = snapshot(request)
    request.received_count, request.discrepancy, request.received_at = received_count, discrepancy[:2000], now
    request.due_at = now + dt.timedelta(days=service_of(request.instrument).turnaround_days)
    return moved(request, MOVES["receive"], actor=actor, before=before, now=now, note=discrepancy)


@transaction.atomic
def receive_samples(*, actor, request_id: int, received_count: int | None = None, discrepancy: str = "",
                    now: dt.datetime | None = None) -> SampleRequest:
    """The lab counts what arrived (a difference from what was announced must be noted); the turnaround
    target starts counting."""
    return _receive(actor, request_id, received_count, discrepancy, now or timezone.now())


def receive_many(*, actor, request_ids: list[int], now: dt.datetime | None = None) -> dict[int, str]:
    """Bulk receive from the lab's queue: each request as announced, each in its own transaction, so one
    refusal does not stop the rest. Answers {request id: "received" or the refusal's code}."""
    now = now or timezone.now()
    outcome = {}
    for request_id in sorted(set(request_ids)):
        try:
            with transaction.atomic():
                _receive(actor, request_id, None, "", now)
            outcome[request_id] = "received"
        except DomainError as error:
            outcome[request_id] = error.code
    return outcome


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{name} must carry a time zone offset (e.g. 2026-12-01T09:00:00+08:00).")
    return value.astimezone(dt.UTC)


@transaction.atomic
def schedule_work(*, actor, request_id: int, start: dt.datetime, end: dt.datetime,
                  now: dt.datetime | None = None) -> SampleRequest:
    """Hold instrument time for the work: the time is blocked for bookings as a booking blocks it
    (``submissions.extensions.work_time``); a taken time is a 409 naming it. Scheduling again moves it."""
    now = now or timezone.now()
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise Invalid("invalid_range", "The work must end after it starts.")
    if start < now:
        raise Invalid("in_the_past", "Schedule the work in the future.")
    request = locked_request(actor, request_id)
    move = MOVES["schedule"]
    check_side(actor, request, move)
    if request.state == State.SCHEDULED and (request.scheduled_start, request.scheduled_end) == (start, end):
        return request
    if request.state != State.SCHEDULED:
        move.check(request)
    if not work_time:
        raise Conflict("scheduling_unavailable", "No part of the platform can hold instrument time.")
    before = snapshot(request)
    held = work_time.contributions[0].hold(request=request, actor=actor, start=start, end=end, now=now)
    request.scheduled_start, request.scheduled_end = start, end
    return moved(request, move, actor=actor, before=before, now=now, **(held or {}))


@transaction.atomic
def start_work(*, actor, request_id: int, now: dt.datetime | None = None) -> SampleRequest:
    now = now or timezone.now()
    request, done = _begin(actor, request_id, "start")
    if done:
        return request
    return moved(request, MOVES["start"], actor=actor, before=snapshot(request), now=now)


@transaction.atomic
def deliver_results(*, actor, request_id: int, note: str = "", now: dt.datetime | None = None) -> SampleRequest:
    """The lab says the results are there: at least one result file must be."""
    now = now or timezone.now()
    request, done = _begin(actor, request_id, "deliver")
    if done:
        return request
    if not request.attachments.filter(kind=Attachment.Kind.RESULT).exists():
        raise Conflict("results_required", "Upload the result files before delivering.")
    before = snapshot(request)
    request.delivered_at = now
    return moved(request, MOVES["deliver"], actor=actor, before=before, now=now, note=note)


@transaction.atomic
def complete_request(*, actor, request_id: int, now: dt.datetime | None = None) -> SampleRequest:
    """Completed: the apps above write what it produces (usage: billable items and the service record)."""
    now = now or timezone.now()
    request, done = _begin(actor, request_id, "complete")
    if done:
        return request
    before = snapshot(request)
    request.completed_at = now
    recorded = {}
    for part in completion_parts.contributions:
        recorded.update(part.completed(request=request, now=now) or {})
    return moved(request, MOVES["complete"], actor=actor, before=before, now=now, **recorded)


def _stop(actor, request_id: int, name: str, reason: str, now: dt.datetime) -> SampleRequest:
    move = MOVES[name]
    request = locked_request(actor, request_id)
    check_side(actor, request, move)
    if request.state == move.target:
        return request
    move.check(request)
    reason = (reason or "").strip()
    if move.needs_reason and not reason:
        raise Invalid("reason_required", "Give the requester a reason.")
    before = snapshot(request)
    request.reason = reason[:2000]
    if request.scheduled_start is not None and work_time:
        work_time.contributions[0].release(request=request, actor=actor, now=now)
    return moved(request, move, actor=actor, before=before, now=now, reason=reason)


@transaction.atomic
def cancel_request(*, actor, request_id: int, reason: str = "", now: dt.datetime | None = None) -> SampleRequest:
    """The requester cancels before the samples arrive; the lab cancels any time before completion, with a reason."""
    now = now or timezone.now()
    request = locked_request(actor, request_id)
    by_requester = is_requester_side(actor, request) and (
        request.state in MOVES["cancel"].sources or not is_lab(actor, request))
    return _stop(actor, request_id, "cancel" if by_requester else "cancel_by_lab", reason, now)


@transaction.atomic
def reject_request(*, actor, request_id: int, reason: str, now: dt.datetime | None = None) -> SampleRequest:
    """The lab turns the request down, with a reason, before the work starts."""
    return _stop(actor, request_id, "reject", reason, now or timezone.now())
