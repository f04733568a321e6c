"""Reads shared by the usage pages: the lab manager's review."""

from __future__ import annotations

import datetime as dt

from django.db.models import Max, QuerySet
from django.db.models.functions import Coalesce

from .models import ReviewFlag, UsageSession

REVIEW_LIMIT = 300


def open_flags(lab_ids) -> QuerySet[ReviewFlag]:
    """Open flags of these labs, the most recent use first (the booking's start, else the session's)."""
    return (ReviewFlag.objects.filter(instrument__lab_id__in=lab_ids, state=ReviewFlag.State.OPEN)
            .select_related("instrument", "booking__user", "session__user")
            .annotate(used_at=Coalesce("booking__start", "session__start", "session__end", "created_at"))
            .order_by("-used_at", "-pk"))


def last_use_by_booking(booking_ids) -> dict[int, dt.datetime]:
    """When the recorded use of each booking ended (the latest session end), for overrun and early finish."""
    rows = (UsageSession.objects.filter(booking_id__in=booking_ids, end__isnull=False)
            .values("booking_id").annotate(last=Max("end")))
    return {row["booking_id"]: row["last"] for row in rows}


def recent_sessions(lab_ids, limit: int = 100) -> QuerySet[UsageSession]:
    return (UsageSession.objects.filter(instrument__lab_id__in=lab_ids)
            .select_related("instrument", "user", "booking").order_by("-start")[:limit])
