"""The e-mail of a request's history row: bilingual, to the other side of the move, sent once."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Membership, User

from ..models import RequestEvent, SampleRequest

SUBJECT = "送样 #{id} {state_zh} · Sample request #{id} {state_en}: {name}"


def recipients(event: RequestEvent) -> list[str]:
    """The lab hears of what the requester's side does, the requester of what the lab does."""
    request = event.request
    managers = set(User.objects.filter(memberships__lab_id=request.instrument.lab_id,
                                       memberships__role=Membership.Role.MANAGER, is_active=True)
                   .exclude(email="").values_list("email", flat=True))
    by_lab = event.actor is not None and event.actor_id != request.requester_id and \
        people.is_lab_manager(event.actor, request.instrument.lab_id)
    if by_lab:
        return [request.requester.email] if request.requester.email else []
    return sorted(managers)


def build_message(event: RequestEvent) -> EmailMessage | None:
    request = event.request
    to = recipients(event)
    if not to:
        return None
    state = SampleRequest.State(event.state_to)
    with translation.override("zh-hans"):
        state_zh = str(state.label)
    with translation.override("en"):
        state_en = str(state.label).lower()
    context = {"event": event, "request": request, "instrument": request.instrument, "state_zh": state_zh,
               "state_en": state_en, "url": f"{settings.SITE_URL}/submissions/{request.pk}/",
               "time_zone": request.instrument.time_zone,
               "local_time": event.created_at.astimezone(request.instrument.zone)}
    body = render_to_string("submissions/email/event.txt", context)
    subject = SUBJECT.format(id=request.pk, state_zh=state_zh, state_en=state_en, name=request.instrument.name_zh)
    message = EmailMessage(subject=subject, body=body, to=to)
    message.extra_headers["X-InstrumentShare-Sample-Request"] = str(request.pk)
    return message


def send(event_id: int, *, now: dt.datetime | None = None) -> bool:
    """Mail one event, once: the row is locked and marked in the same transaction."""
    with transaction.atomic():
        event = (RequestEvent.objects.select_for_update(of=("self",))
                 .select_related("request__instrument", "request__requester", "actor")
                 .filter(pk=event_id, mailed_at__isnull=True).first())
        if event is None:
            return False
        message = build_message(event)
        if message is not None:
            message.send()
        event.mailed_at = now or timezone.now()
        event.save(update_fields=["mailed_at"])
    return message is not None


def sweep(*, now: dt.datetime | None = None, older_than: dt.timedelta = dt.timedelta(minutes=2)) -> int:
    """Mail what is still unsent (the broker was down, a worker died)."""
    now = now or timezone.now()
    ids = list(RequestEvent.objects.filter(mailed_at__isnull=True, created_at__lt=now - older_than)
               .order_by("id").values_list("pk", flat=True)[:500])
    return sum(1 for event_id in ids if send(event_id, now=now))
