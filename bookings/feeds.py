"""Calendar feeds: a private one per user (or per lab for its managers) and a public one per instrument."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.utils import timezone

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.services import token_digest
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Forbidden, Invalid, NotFound

from . import ical, queries
from .models import Booking, FeedToken

FEED_PAST_DAYS = 90
FEED_FUTURE_DAYS = 400


@transaction.atomic
def create_feed_token(*, user, scope: str = FeedToken.Scope.MINE, lab_id: int | None = None) -> tuple[FeedToken, str]:
    if scope == FeedToken.Scope.LAB:
        if lab_id is None:
            raise Invalid("lab_required", "A lab feed names its lab.")
        if not people.is_lab_manager(user, lab_id):
            raise Forbidden("forbidden", "Only the lab's managers may have its feed.")
    elif scope == FeedToken.Scope.MINE:
        lab_id = None
    else:
        raise Invalid("invalid_scope", "Scope is mine or lab.")
    plain = secrets.token_urlsafe(32)
    token = FeedToken.objects.create(user=user, scope=scope, lab_id=lab_id, digest=token_digest(plain))
    record(actor=user, action="feed_token.created", target=token, after={"scope": scope, "lab_id": lab_id})
    return token, plain


@transaction.atomic
def revoke_feed_token(*, user, feed_id: int) -> FeedToken:
    token = FeedToken.objects.select_for_update().filter(pk=feed_id, user=user).first()
    if token is None:
        raise NotFound("not_found", "No such feed.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(actor=user, action="feed_token.revoked", target=token, after={"revoked_at": token.revoked_at})
    return token


def _window(now: dt.datetime):
    return now - dt.timedelta(days=FEED_PAST_DAYS), now + dt.timedelta(days=FEED_FUTURE_DAYS)


def private_feed(plain: str, *, now: dt.datetime | None = None) -> bytes | None:
    """The feed behind a secret token, or None when the token is unknown or revoked."""
    token = FeedToken.objects.select_related("user").filter(digest=token_digest(plain or "")).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    start, end = _window(now or timezone.now())
    if token.scope == FeedToken.Scope.LAB:
        if not people.is_lab_manager(token.user, token.lab_id):
            return None  # no longer a manager: the link stops working
        rows = queries.bookings().filter(instrument__lab_id=token.lab_id)
        name = "实验室预约 Lab bookings"
    else:
        rows = queries.my_bookings(token.user)
        name = "我的仪器预约 My instrument bookings"
    # Plain rows, no model instances: the feed of a busy person has thousands of events.
    rows = rows.filter(start__lt=end, end__gt=start).order_by("start", "id").values_list(*ical.FEED_FIELDS)[:20000]
    return ical.feed(rows, name=name)


def public_instrument_feed(instrument, *, now: dt.datetime | None = None) -> bytes:
    """Busy times of one instrument, with no personal data."""
    start, end = _window(now or timezone.now())
    rows = Booking.objects.filter(instrument=instrument, start__lt=end, end__gt=start).order_by("start", "id")
    rows = rows.values_list(*ical.PUBLIC_FEED_FIELDS)[:20000]
    return ical.feed(rows, name=f"{instrument.name_zh} 占用 Busy", private=False)
