"""A lab manager's review of flagged usage, and the user's rating of a completed service."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Invalid, NotFound

from ..models import BillableItem, ReviewFlag, ServiceRecord


@transaction.atomic
def resolve_flag(*, actor, flag_id: int, decision: str, reason: str = "", minutes: int | None = None) -> ReviewFlag:
    """Accept, correct (with a reason and the billable minutes) or waive (with a reason) a flagged item."""
    flag = ReviewFlag.objects.select_for_update().select_related("instrument").filter(pk=flag_id).first()
    if flag is None or not people.is_lab_manager(actor, flag.instrument.lab_id):
        raise NotFound("not_found", gettext("No such flag."))
    if decision not in ("accepted", "corrected", "waived"):
        raise Invalid("invalid_decision", gettext("Decision is accepted, corrected or waived."))
    if decision != "accepted" and not (reason or "").strip():
        raise Invalid("reason_required", gettext("Corrections and waivers need a reason."))
    if flag.state != ReviewFlag.State.OPEN:
        if flag.state == decision:
            return flag
        raise Conflict("already_resolved", gettext("This flag was already decided: %(state)s.")
                       % {"state": flag.get_state_display()})
    item = None
    if flag.booking_id:
        item = BillableItem.objects.select_for_update().filter(booking_id=flag.booking_id).first()
    elif flag.session_id:
        item = BillableItem.objects.select_for_update().filter(session_id=flag.session_id).first()
    if decision in ("corrected", "waived"):
        if item is None:
            raise Conflict("not_reconciled",
                           gettext("Reconciliation has not produced a billable item for this yet."))
        if item.state == BillableItem.State.BILLED:
            raise Conflict("period_closed",
                           gettext("This item is billed already; corrections go through a credit note."))
        before = {"quantity": item.quantity, "state": item.state}
        if decision == "waived":
            item.state = BillableItem.State.WAIVED
        else:
            if minutes is None or minutes < 0 or minutes > 100_000:
                raise Invalid("invalid_quantity", gettext("Give the corrected billable quantity."))
            item.quantity = minutes
        item.corrected, item.note, item.updated_at = True, reason[:500], timezone.now()
        item.save()
        record(actor=actor, action=f"billable_item.{decision}", target=item, before=before,
               after={"quantity": item.quantity, "state": item.state}, reason=reason)
    flag.state, flag.resolved_by, flag.resolved_at, flag.reason = decision, actor, timezone.now(), reason
    flag.save()
    record(actor=actor, action=f"review_flag.{decision}", target=flag, after={"kind": flag.kind}, reason=reason)
    return flag


BULK_LIMIT = 500


def accept_flags(*, actor, flag_ids) -> list[ReviewFlag]:
    """Accept several flags at once (the review page's "accept selected"): each through ``resolve_flag``,
    so each meets the same rules and gets its own audit record. All or none: if one of them was decided
    otherwise meanwhile, nothing is accepted and the refusal says so."""
    ids = sorted(set(flag_ids))
    if not ids:
        raise Invalid("nothing_selected", gettext("Select the flags to accept."))
    if len(ids) > BULK_LIMIT:
        raise Invalid("too_many", gettext("Accept at most %(limit)d flags at once.") % {"limit": BULK_LIMIT})
    with transaction.atomic():
        return [resolve_flag(actor=actor, flag_id=flag_id, decision="accepted") for flag_id in ids]


@transaction.atomic
def rate_service(*, user, record_id: int, rating: int) -> ServiceRecord:
    service = ServiceRecord.objects.select_for_update().filter(pk=record_id, user=user).first()
    if service is None:
        raise NotFound("not_found", "No such service record.")
    if not 1 <= rating <= 5:
        raise Invalid("invalid_rating", "Rate from 1 to 5.")
    if service.rating is not None:
        raise Conflict("already_rated", "You have rated this service already.")
    service.rating, service.rated_at = rating, timezone.now()
    service.save(update_fields=["rating", "rated_at"])
    record(actor=user, action="service_record.rated", target=service, after={"rating": rating})
    return service
