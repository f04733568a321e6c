"""The catalog's e-mails: a training request to the lab's managers, the decision to the requester.

Bilingual plain text like the booking e-mails; sent by a task after the request or decision commits.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage

from instrumentshare.accounts.models import Membership

from .models import TrainingRequest


def _requests_url() -> str:
    return f"{settings.SITE_URL}/instruments/training-requests/"


def managers_emails(lab_id: int) -> list[str]:
    return sorted(set(Membership.objects.filter(lab_id=lab_id, role="manager", user__is_active=True)
                      .exclude(user__email="").values_list("user__email", flat=True)))


def training_request_message(training: TrainingRequest) -> EmailMessage | None:
    recipients = managers_emails(training.instrument.lab_id)
    if not recipients:
        return None
    person = training.user
    body = (f"{person.display_name} ({person.username}) 申请仪器培训。\n"
            f"{person.display_name} ({person.username}) asks to be trained.\n\n"
            f"仪器 Instrument: {training.instrument.name_zh}\n"
            f"留言 Message: {training.message or '—'}\n\n"
            f"批准或拒绝 Grant or decline: {_requests_url()}\n")
    return EmailMessage(subject=f"培训申请 Training request: {training.instrument.name_zh}", body=body,
                        to=recipients)


def training_decision_message(training: TrainingRequest) -> EmailMessage | None:
    if not training.user.email:
        return None
    instrument = training.instrument
    if training.state == TrainingRequest.State.DONE:
        expiry = training.qualification.expires_at if training.qualification else None
        until = f"{expiry.astimezone(instrument.zone):%Y-%m-%d}" if expiry else "长期有效 no expiry"
        head = (f"您已获得仪器使用资格，有效期至 {until}。\nYou are qualified on this instrument until {until}; "
                "you can book it now.")
        subject = f"培训申请已批准 Training granted: {instrument.name_zh}"
    else:
        head = "您的培训申请未获批准。\nYour training request was declined."
        subject = f"培训申请未获批准 Training request declined: {instrument.name_zh}"
    body = (f"{head}\n\n仪器 Instrument: {instrument.name_zh}\n"
            f"实验室留言 Note from the lab: {training.decision_note or '—'}\n\n"
            f"{settings.SITE_URL}/instruments/{instrument.pk}/\n")
    return EmailMessage(subject=subject, body=body, to=[training.user.email])


def send_training_mail(training_request_id: int, kind: str) -> bool:
    training = TrainingRequest.objects.select_related("instrument", "user", "qualification").filter(
        pk=training_request_id).first()
    if training is None:
        return False
    message = training_request_message(training) if kind == "request" else training_decision_message(training)
    if message is None:
        return False
    message.send()
    return True
