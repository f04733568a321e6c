"""Reads of sample requests shared by the API, the pages and the reports."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Case, F, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.core.errors import NotFound
from instrumentshare.core.money import ZERO, money

from .models import Analysis, Attachment, QuoteItem, RequestEvent, SampleRequest
from .services.common import can_see


def requests() -> QuerySet[SampleRequest]:
    return (SampleRequest.objects.select_related("instrument", "instrument__lab", "requester", "quote")
            .prefetch_related("analyses"))


def my_requests(user) -> QuerySet[SampleRequest]:
    return requests().filter(requester=user)


def lab_queue(user, *, state: str | None = None, now: dt.datetime | None = None) -> QuerySet[SampleRequest]:
    """The lab's work, open first, overdue first among it, then the nearest due date, then the oldest."""
    now = now or timezone.now()
    queryset = requests().filter(instrument__lab_id__in=people.managed_lab_ids(user))
    queryset = queryset.filter(state=state) if state else queryset.filter(state__in=SampleRequest.OPEN_STATES)
    overdue = Q(state__in=SampleRequest.OPEN_STATES, due_at__lt=now)
    return queryset.annotate(overdue=Case(When(overdue, then=Value(0)), default=Value(1),
                                          output_field=IntegerField())).order_by(
        "overdue", F("due_at").asc(nulls_last=True), "submitted_at", "id")


def request_for(user, request_id: int) -> SampleRequest:
    request = (requests().prefetch_related(
        Prefetch("events", queryset=RequestEvent.objects.select_related("actor")),
        Prefetch("attachments", queryset=Attachment.objects.all()),
        Prefetch("quote__items", queryset=QuoteItem.objects.all()),
    ).filter(pk=request_id).first())
    if request is None or not can_see(user, request):
        raise NotFound("not_found", "No such sample request.")
    return request


def analyses_of(instrument: Instrument) -> QuerySet[Analysis]:
    return Analysis.objects.filter(instrument=instrument, is_active=True).order_by("code")


def estimate(instrument: Instrument, analysis_ids: list[int], sample_count: int) -> dict:
    """What the lab's list prices make of a request before it is sent: each analysis per sample."""
    lines = []
    for analysis in analyses_of(instrument).filter(pk__in=set(analysis_ids)):
        amount = money(Decimal(sample_count) * analysis.price_per_sample)
        lines.append({"analysis_id": analysis.pk, "name_zh": analysis.name_zh, "name_en": analysis.name_en,
                      "quantity": sample_count, "unit_price": analysis.price_per_sample, "amount": amount})
    return {"lines": lines, "total": sum((line["amount"] for line in lines), ZERO), "currency": "CNY",
            "binding": False}
