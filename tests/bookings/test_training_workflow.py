"""Training as a workflow: told up front, a request in the lab queue, granted or declined there, the requester told."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import Qualification, TrainingRequest

from .conftest import SHANGHAI, make_instrument

LATER = (timezone.now() + dt.timedelta(days=200)).astimezone(SHANGHAI).date()  # an expiry always ahead


@pytest.fixture
def trained_only(world):
    return make_instrument(world, name="透射电镜", policy={"qualification_required": True})


def test_the_calendar_and_the_form_tell_an_unqualified_user_up_front_and_offer_a_request(world, client,
                                                                                      trained_only):
    client.force_login(world.researcher)
    calendar = client.get(f"/bookings/instrument/{trained_only.pk}/")
    page = calendar.content.decode()
    assert 'data-testid="training-needed"' in page and 'data-testid="ask-training"' in page
    assert calendar.context["config"]["selectable"] is False  # no slot to drag before training
    form = client.get(f"/bookings/new/?instrument={trained_only.pk}").content.decode()
    assert 'data-testid="training-needed"' in form and 'data-testid="booking-form"' not in form


def test_a_request_reaches_the_lab_queue_and_its_managers_by_mail_and_the_grant_tells_the_requester(
        world, client, api_as, trained_only, django_capture_on_commit_callbacks):
    client.force_login(world.researcher)
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(f"/instruments/{trained_only.pk}/training/",
                           {"message": "PhD student, need EDS", "next": f"/bookings/instrument/{trained_only.pk}/"})
    assert sent.status_code == 302 and sent["Location"] == f"/bookings/instrument/{trained_only.pk}/"
    assert [m.to for m in mail.outbox] == [[world.manager.email]] and "PhD student" in mail.outbox[0].body
    assert 'data-testid="training-requested"' in client.get(sent["Location"]).content.decode()

    queue = api_as(world.manager).get("/training-requests")
    assert [(row["username"], row["instrument_id"]) for row in queue.json()] == [("researcher", trained_only.pk)]
    assert api_as(world.other_manager).get("/training-requests").json() == []

    client.force_login(world.manager)
    assert "PhD student" in client.get("/instruments/training-requests/").content.decode()
    training = TrainingRequest.objects.get()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        granted = client.post(f"/instruments/training-requests/{training.pk}/grant/",
                              {"expires": LATER.isoformat(), "note": "Welcome"})
    assert granted.status_code == 302
    qualification = Qualification.objects.get(user=world.researcher, instrument=trained_only)
    assert qualification.expires_at == dt.datetime.combine(LATER, dt.time(23, 59), tzinfo=SHANGHAI)
    training.refresh_from_db()
    assert training.state == "done" and training.qualification == qualification and training.decided_by == world.manager
    assert [m.to for m in mail.outbox] == [[world.researcher.email]]
    assert LATER.isoformat() in mail.outbox[0].body and "Welcome" in mail.outbox[0].body
    client.force_login(world.researcher)
    assert client.get(f"/bookings/instrument/{trained_only.pk}/").context["config"]["selectable"] is True


def test_a_declined_request_tells_the_requester_why_and_others_cannot_decide(world, api_as, trained_only,
                                                                            django_capture_on_commit_callbacks):
    training = catalog_services.request_training(actor=world.researcher, instrument_id=trained_only.pk)
    outsider = api_as(world.other_manager).post(f"/training-requests/{training.pk}/grant", {})
    assert outsider.status_code in (403, 404) and not Qualification.objects.exists()
    assert api_as(world.manager).post(f"/training-requests/{training.pk}/grant",
                                      {"username": "someone"}).status_code == 422  # no typing usernames
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        declined = api_as(world.manager).post(f"/training-requests/{training.pk}/decline",
                                              {"reason": "Course full until March"})
    assert declined.status_code == 200 and declined.json()["state"] == "declined"
    assert [m.to for m in mail.outbox] == [[world.researcher.email]]
    assert "declined" in mail.outbox[0].subject and "Course full until March" in mail.outbox[0].body


def test_granting_through_the_api_sets_the_expiry(world, api_as, trained_only):
    training = catalog_services.request_training(actor=world.researcher, instrument_id=trained_only.pk)
    answer = api_as(world.manager).post(f"/training-requests/{training.pk}/grant",
                                        {"expires_at": f"{LATER.isoformat()}T23:59:00+08:00", "note": "ok"})
    assert answer.status_code == 200, answer.content
    assert answer.json()["state"] == "done" and answer.json()["expires_at"].startswith(f"{LATER.isoformat()}T15:59")
    past = catalog_services.request_training(actor=world.other_researcher, instrument_id=trained_only.pk)
    refused = api_as(world.manager).post(f"/training-requests/{past.pk}/grant",
                                         {"expires_at": "2020-01-01T00:00:00+08:00"})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_expiry"
