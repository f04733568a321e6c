"""The secret links of calendar feeds: a private feed per user, or per lab for its managers (the feeds
themselves are read in ``bookings.queries``)."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.services import token_digest
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Forbidden, Invalid, NotFound

from ..models import FeedToken


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
