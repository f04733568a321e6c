"""The audit trail over the API. Who did what to whom is personal data: the bureau reads it all,
everyone else reads only what they did themselves. The seal head is public, for anyone to publish
and to check an export against."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Query, Router, Schema

from .models import AuditEvent, AuditSeal

router = Router(tags=["audit"])


class EventOut(Schema):
    id: int
    stream_key: str
    seq: int
    occurred_at: datetime
    actor_id: int | None
    actor_repr: str
    request_id: str
    action: str
    target_type: str
    target_id: str
    before: Any = None
    after: Any = None
    reason: str
    hash: str


class EventPage(Schema):
    count: int
    items: list[EventOut]


class Filters(Schema):
    action: str | None = Field(None, max_length=80)
    target_type: str | None = Field(None, max_length=80)
    target_id: str | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)


class HeadOut(Schema):
    sealed_events: int
    seal_seq: int
    seal_hash: str
    sealed_at: datetime | None


@router.get("/events", response=EventPage, summary="Audit events (the bureau: all; others: their own actions)")
def list_events(request, filters: Query[Filters]):
    events = AuditEvent.objects.order_by("-id")
    if not getattr(request.auth, "oversees_platform", False):
        events = events.filter(actor=request.auth)
    for field in ("action", "target_type", "target_id"):
        if getattr(filters, field):
            events = events.filter(**{field: getattr(filters, field)})
    return {"count": events.count(), "items": list(events[filters.offset: filters.offset + filters.limit])}


@router.get("/head", auth=None, response=HeadOut, summary="The global seal chain's head, public")
def head(request):
    last = AuditSeal.objects.order_by("-seq").first()
    return {"sealed_events": last.seq if last else 0, "seal_seq": last.seq if last else 0,
            "seal_hash": last.hash if last else "0" * 64, "sealed_at": last.sealed_at if last else None}
