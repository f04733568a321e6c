"""What every write of a sample request shares: who is who, the locked row, the history row and its e-mail."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import changes, record
from instrumentshare.core.errors import Forbidden, NotFound

from ..extensions import request_parts
from ..models import RequestEvent, SampleRequest
from ..transitions import EITHER, LAB, REQUESTER, Move

logger = logging.getLogger(__name__)

AUDIT_FIELDS = ("instrument_id", "requester_id", "charged_lab_id", "state", "sample_count", "sample_type",
                "sample_state", "hazards", "after_use", "received_count", "scheduled_start", "scheduled_end",
                "due_at", "rating")


def snapshot(request: SampleRequest) -> dict:
    return changes(request, AUDIT_FIELDS)


def is_lab(user, request: SampleRequest) -> bool:
    return people.is_lab_manager(user, request.instrument.lab_id)


def decides_for_account(user, request: SampleRequest) -> bool:
    """Whether an app above (billing: the project's PI, the company's finance) lets ``user`` decide."""
    return any(part.may_decide(user=user, request=request) for part in request_parts.contributions)


def is_requester_side(user, request: SampleRequest) -> bool:
    return request.requester_id == user.pk or decides_for_account(user, request)


def can_see(user, request: SampleRequest) -> bool:
    if not people.is_authenticated(user):
        return False
    return is_requester_side(user, request) or is_lab(user, request) or people.is_platform_admin(user)


def locked_request(user, request_id: int) -> SampleRequest:
    """The request, locked for this transaction; 404 for whoever may not see it."""
    request = (SampleRequest.objects.select_for_update(of=("self",))
               .select_related("instrument", "instrument__lab", "requester").filter(pk=request_id).first())
    if request is None or not can_see(user, request):
        raise NotFound("not_found", "No such sample request.")
    return request


def check_side(user, request: SampleRequest, move: Move) -> None:
    lab, requester = is_lab(user, request), is_requester_side(user, request)
    allowed = {LAB: lab, REQUESTER: requester, EITHER: lab or requester}[move.by]
    if not allowed:
        who = {LAB: "the instrument's lab", REQUESTER: "the requester", EITHER: "the requester or the lab"}[move.by]
        raise Forbidden("forbidden", f"Only {who} may {move.name.replace('_', ' ')} this request.")


def moved(request: SampleRequest, move: Move | str, *, actor, before: dict, now: dt.datetime, note: str = "",
          reason: str = "", **recorded) -> SampleRequest:
    """Finish a move: the new state, the row, its audit record and its history row, whose e-mail is sent
    after commit (a task takes the event's id; it mails each event once)."""
    name, action = (move, f"submission.{move}") if isinstance(move, str) else (move.name, move.action)
    source = request.state
    if not isinstance(move, str):
        request.state = move.target
    request.save()
    record(actor=actor, action=action, target=request, before=before, after={**snapshot(request), **recorded},
           reason=reason, now=now)
    event = RequestEvent.objects.create(request=request, actor=actor, move=name, state_from=str(source),
                                        state_to=str(request.state), note=(note or reason or "")[:2000],
                                        created_at=now)
    transaction.on_commit(lambda: _dispatch(event.pk))
    return request


def _dispatch(event_id: int) -> None:
    from ..tasks import mail_request_event

    try:
        mail_request_event.delay(event_id)
    except Exception as error:  # noqa: BLE001 - broker down: the sweep mails it later
        logger.warning("could not enqueue the mail of request event %s (%s); the sweep sends it", event_id, error)
