"""Booking credit: no-shows and late cancellations lower a user's score; below a threshold they may not
book until the bureau lifts the ban. One function writes every penalty, for one booking or a chunk."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Value, When

from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record, record_many
from instrumentshare.core.bulk import insert_rows, pg_array
from instrumentshare.core.errors import Forbidden, Invalid

from ..models import CreditEvent, UserCredit

PENALTIES = {"no_show": "CREDIT_NO_SHOW_PENALTY", "late_cancel": "CREDIT_LATE_CANCEL_PENALTY"}


def credit_score(user) -> int:
    credit = UserCredit.objects.filter(user=user).values_list("score", flat=True).first()
    return settings.CREDIT_INITIAL_SCORE if credit is None else credit


def penalize(bookings: list[tuple[int, int]], *, kind: str, now: dt.datetime, actor=None) -> int:
    """Take the ``kind`` penalty (settings ``CREDIT_<KIND>_PENALTY``) for each of these (booking id,
    user id) pairs, once per booking: the credit events, every user's score in one statement, one audit
    record per user (``credit.<kind>``, the bookings and the points). The callers hold the bookings'
    row locks, so no two of them penalize one booking at once. Returns how many bookings cost points."""
    penalty = getattr(settings, PENALTIES[kind])
    users = dict(bookings)
    if penalty <= 0 or not users:
        return 0
    new = _new_events(users, kind=kind, penalty=penalty, now=now, actor=actor)
    if not new:
        return 0
    per_user = defaultdict(list)
    for pk in new:
        per_user[users[pk]].append(pk)
    _lower_scores({user_id: penalty * len(booking_ids) for user_id, booking_ids in per_user.items()}, now=now)
    record_many(actor=actor, action=f"credit.{kind}", now=now, entries=[
        {"target": ("accounts.user", user_id), "after": {"booking_ids": sorted(booking_ids),
                                                         "delta": -penalty * len(booking_ids)}}
        for user_id, booking_ids in sorted(per_user.items())])
    return len(new)


def _new_events(users: dict[int, int], *, kind: str, penalty: int, now: dt.datetime, actor) -> list[int]:
    """A credit event for each of these bookings (booking id: user id) that has none of this kind yet;
    the bookings that got one, in order."""
    actor_id = getattr(actor, "pk", None)
    if connection.vendor == "postgresql":
        # One statement: the unique key (booking, kind) skips those penalized before.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {connection.ops.quote_name(CreditEvent._meta.db_table)} "  # noqa: S608 - table name
                "(user_id, booking_id, kind, delta, actor_id, created_at) "
                "SELECT u, b, %s, %s, %s, %s FROM unnest(%s::bigint[], %s::bigint[]) AS v(b, u) "
                "ON CONFLICT DO NOTHING RETURNING booking_id",
                [kind, -penalty, actor_id, now, pg_array(users), pg_array(users.values())])
            return sorted(pk for (pk,) in cursor.fetchall())
    already = set(CreditEvent.objects.filter(booking_id__in=list(users), kind=kind)
                  .values_list("booking_id", flat=True))
    new = [pk for pk in users if pk not in already]
    insert_rows(CreditEvent, ("user_id", "booking_id", "kind", "delta", "actor_id", "created_at"),
                [(users[pk], pk, kind, -penalty, actor_id, now) for pk in new])
    return new


def _lower_scores(totals: dict[int, int], *, now: dt.datetime) -> None:
    """Each user's score lowered by their total (a user without a score starts from the initial one)."""
    if connection.vendor == "postgresql":
        # One upsert: a new row is the initial score less the total; an existing one is lowered by the
        # total, which the proposed row carries as initial − total.
        initial, order = settings.CREDIT_INITIAL_SCORE, sorted(totals)  # rows locked in user order
        table = connection.ops.quote_name(UserCredit._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} AS c (user_id, score, updated_at) "  # noqa: S608 - table name
                "SELECT u, %s - t, %s FROM unnest(%s::bigint[], %s::bigint[]) AS v(u, t) "
                "ON CONFLICT (user_id) DO UPDATE SET score = c.score - (%s - EXCLUDED.score), "
                "updated_at = EXCLUDED.updated_at",
                [initial, now, pg_array(order), pg_array(totals[user_id] for user_id in order), initial])
        return
    UserCredit.objects.bulk_create([UserCredit(user_id=user_id, score=settings.CREDIT_INITIAL_SCORE)
                                    for user_id in totals], ignore_conflicts=True)
    # One UPDATE for all: users grouped by their total penalty (a few distinct values).
    by_total = defaultdict(list)
    for user_id, total in totals.items():
        by_total[total].append(user_id)
    UserCredit.objects.filter(user_id__in=list(totals)).update(
        score=F("score") - Case(*[When(user_id__in=ids, then=Value(total)) for total, ids in by_total.items()],
                                output_field=IntegerField()),
        updated_at=now)


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
