"""The lab queue lists the lab's e-mails that did not go out (failed, or pending longer than
OUTBOX_ALERT_MINUTES) with "Send again", to that lab's managers only (issue 18, item 2)."""

import datetime as dt

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Notification
from bookings.services import notifications
from instrumentshare.audit.models import AuditEvent
from tests.bookings.conftest import make_instrument
from tests.bookings.test_invitations import _pending_invitations

pytestmark = pytest.mark.django_db


@pytest.fixture
def outbox(world, instrument, settings):
    """Lab A: one failed row, one overdue, one fresh; lab B: one overdue."""
    failed, overdue, fresh = _pending_invitations(world, instrument, count=3)
    Notification.objects.filter(pk=failed).update(state="failed", last_error="no e-mail address")
    long_ago = timezone.now() - dt.timedelta(minutes=settings.OUTBOX_ALERT_MINUTES + 5)
    Notification.objects.filter(pk__in=[failed, overdue]).update(created_at=long_ago, attempts=7)
    theirs = make_instrument(world, name="透射电镜", lab=world.lab_b, manager=world.other_manager)
    [other_lab] = set(_pending_invitations(world, theirs, count=1, user=world.other_researcher)) - {
        failed, overdue, fresh}
    Notification.objects.filter(pk=other_lab).update(created_at=long_ago)
    return {"failed": failed, "overdue": overdue, "fresh": fresh, "other_lab": other_lab}


def _page(user, language="zh-hans", lab=None):
    client = Client(headers={"accept-language": language})
    client.force_login(user)
    return client.get(reverse("bookings:lab_queue"), {"lab": lab.pk} if lab else {})


def _listed(response) -> set[int]:
    text = response.content.decode()
    return {int(chunk.split('"', 1)[0]) for chunk in text.split('data-notification="')[1:]}


def test_a_manager_sees_the_labs_failed_and_overdue_mail_in_chinese_and_english(world, outbox):
    response = _page(world.manager)
    assert response.status_code == 200
    assert _listed(response) == {outbox["failed"], outbox["overdue"]}
    assert "未送达的邮件" in response.content.decode() and "重新发送" in response.content.decode()
    english = _page(world.manager, "en")
    assert _listed(english) == {outbox["failed"], outbox["overdue"]}
    assert "E-mails not delivered" in english.content.decode()


def test_other_labs_managers_see_only_their_own_and_others_get_404(world, outbox):
    assert _listed(_page(world.other_manager)) == {outbox["other_lab"]}
    assert _listed(_page(world.other_manager, lab=world.lab_a)) == {outbox["other_lab"]}  # falls back to theirs
    for outsider in (world.researcher, world.finance, world.bureau):
        assert _page(outsider).status_code == 404


def test_send_again_puts_the_row_back_and_sends_it_at_once(world, outbox, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(world.manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("bookings:resend_notification", args=[outbox["overdue"]]))
    assert response.status_code == 302 and response.url == reverse("bookings:lab_queue")
    row = Notification.objects.get(pk=outbox["overdue"])
    assert (row.state, row.sent_at is not None) == ("sent", True)
    assert [message.extra_headers["Message-ID"] for message in mail.outbox] == [notifications.message_id(row)]
    assert AuditEvent.objects.filter(action="notification.requeued", actor=world.manager,
                                     after__notification_id=row.pk).exists()
    assert outbox["overdue"] not in _listed(_page(world.manager))


def test_send_again_of_a_failed_row_waits_for_its_address_without_a_server_error(world, outbox,
                                                                                 django_capture_on_commit_callbacks):
    type(world.researcher).objects.filter(pk=world.researcher.pk).update(email="")
    client = Client()
    client.force_login(world.manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("bookings:resend_notification", args=[outbox["failed"]]))
    assert response.status_code == 302
    assert Notification.objects.get(pk=outbox["failed"]).state == "failed"  # tried, still no address
    assert mail.outbox == []


def test_only_the_labs_managers_may_send_again(world, outbox):
    for outsider in (world.other_manager, world.researcher, world.finance):
        client = Client()
        client.force_login(outsider)
        assert client.post(reverse("bookings:resend_notification", args=[outbox["overdue"]])).status_code == 404
    assert Client().post(reverse("bookings:resend_notification", args=[outbox["overdue"]])).status_code == 302
    assert Notification.objects.get(pk=outbox["overdue"]).attempts == 7  # untouched
    assert not AuditEvent.objects.filter(action="notification.requeued").exists()


def test_a_row_already_sent_is_refused_with_a_message(world, outbox):
    Notification.objects.filter(pk=outbox["overdue"]).update(state="sent")
    client = Client()
    client.force_login(world.manager)
    response = client.post(reverse("bookings:resend_notification", args=[outbox["overdue"]]), follow=True)
    assert response.status_code == 200
    assert "该邮件已经发出。" in response.content.decode()
    assert not AuditEvent.objects.filter(action="notification.requeued").exists()
