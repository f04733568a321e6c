"""Booking credit: no-shows and late cancellations lower a user's score; below a threshold they may not
book until the bureau lifts the ban. One function writes every penalty, for one booking or a chunk."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, IntegerField, Value, When

from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record, record_many
from instrumentshare.core.bulk import among, insert_rows
from instrumentshare.core.errors import Forbidden, Invalid

from ..models import CreditEvent, UserCredit

PENALTIES = {"no_show": "CREDIT_NO_SHOW_PENALTY", "late_cancel": "CREDIT_LATE_CANCEL_PENALTY"}


def credit_score(user) -> int:
    credit = UserCredit.objects.filter(user=user).values_list("score", flat=True).first()
    return settings.CREDIT_INITIAL_SCORE if credit is None else credit


def penalize(bookings: list[tuple[int, int]], *, kind: str, now: dt.datetime, actor=None) -> int:
    """Take the ``kind`` penalty (settings ``CREDIT_<KIND>_PENALTY``) for each of these (booking id,
    user id) pairs, once per booking: the credit events, every user's score in one UPDATE, one audit
    record per user (``credit.<kind>``, the bookings and the points). The callers hold the bookings'
    row locks, so no two of them penalize one booking at once. Returns how many bookings cost points."""
    penalty = getattr(settings, PENALTIES[kind])
    users = dict(bookings)
    if penalty <= 0 or not users:
        return 0
    already = set(CreditEvent.objects.filter(booking_id__in=among(list(users)), kind=kind)
                  .values_list("booking_id", flat=True))
    new = [pk for pk in users if pk not in already]
    if not new:
        return 0
    actor_id = getattr(actor, "pk", None)
    insert_rows(CreditEvent, ("user_id", "booking_id", "kind", "delta", "actor_id", "created_at"),
                [(users[pk], pk, kind, -penalty, actor_id, now) for pk in new])
    per_user = defaultdict(list)
    for pk in new:
        per_user[users[pk]].append(pk)
    UserCredit.objects.bulk_create([UserCredit(user_id=user_id, score=settings.CREDIT_INITIAL_SCORE)
                                    for user_id in per_user], ignore_conflicts=True)
    # One UPDATE for all: users grouped by their total penalty (a few distinct values).
    by_total = defaultdict(list)
    for user_id, booking_ids in per_user.items():
        by_total[penalty * len(booking_ids)].append(user_id)
    UserCredit.objects.filter(user_id__in=list(per_user)).update(
        score=F("score") - Case(*[When(user_id__in=ids, then=Value(total)) for total, ids in by_total.items()],
                                output_field=IntegerField()),
        updated_at=now)
    record_many(actor=actor, action=f"credit.{kind}", now=now, entries=[
        {"target": ("accounts.user", user_id), "after": {"booking_ids": sorted(booking_ids),
                                                         "delta": -penalty * len(booking_ids)}}
        for user_id, booking_ids in sorted(per_user.items())])
    return len(new)


@transaction.atomic
def lift_ban(*, actor, user, reason: str) -> int:
    """A platform administrator restores a user's credit to the booking threshold."""
    if not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only a platform administrator lifts a booking ban.")
    if not (reason or "").strip():
        raise Invalid("reason_required", "Say why the ban is lifted.")
    credit, _created = UserCredit.objects.select_for_update().get_or_create(
        user=user, defaults={"score": settings.CREDIT_INITIAL_SCORE}
    )
    if credit.score >= settings.CREDIT_MIN_TO_BOOK:
        return credit.score
    before = credit.score
    credit.score = settings.CREDIT_MIN_TO_BOOK
    credit.save(update_fields=["score", "updated_at"])
    CreditEvent.objects.create(user=user, kind="ban_lifted", delta=credit.score - before, actor=actor)
    record(actor=actor, action="credit.ban_lifted", target=user, before={"score": before},
           after={"score": credit.score}, reason=reason)
    return credit.score
