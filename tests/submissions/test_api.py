"""A sample request through the API: every move, its refusals (wrong side, wrong state, expired quote),
idempotence, audit and e-mail; files only for the request's people."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command

from instrumentshare.audit.models import AuditEvent
from submissions import services
from submissions.models import SampleRequest

from .conftest import PDF, quote_body, request_body

pytestmark = pytest.mark.django_db


def _submit(api, instrument, **extra):
    response = api.post("/submissions", request_body(instrument, **extra))
    assert response.status_code == 201, response.json()
    return response.json()


def _to_in_progress(world, api_as, instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, instrument)["id"]
    assert lab.post(f"/submissions/{request_id}/quote", quote_body()).status_code == 200
    assert researcher.post(f"/submissions/{request_id}/accept").status_code == 200
    assert lab.post(f"/submissions/{request_id}/receive").status_code == 200
    assert lab.post(f"/submissions/{request_id}/start").status_code == 200
    return request_id


def _upload(api, request_id, name="results.pdf", content=PDF):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.client.post(f"/api/v1/submissions/{request_id}/files",
                           {"file": SimpleUploadedFile(name, content)}, headers=api.headers)


def test_a_request_goes_from_submission_to_completion_and_rating(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    created = _submit(researcher, sample_instrument)
    request_id = created["id"]
    assert created["state"] == "submitted" and created["sample_count"] == 3 and created["after_use"] == "return"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["manager@example.org"]
    assert "送样" in mail.outbox[0].subject and "Sample request" in mail.outbox[0].subject

    quoted = lab.post(f"/submissions/{request_id}/quote", quote_body()).json()
    assert quoted["state"] == "quoted"
    # (3 × 200 + 3 × 150) less 10 %
    assert Decimal(quoted["quote"]["subtotal"]) == Decimal("1050.00")
    assert Decimal(quoted["quote"]["total"]) == Decimal("945.00")
    assert mail.outbox[-1].to == ["researcher@example.org"]

    assert researcher.post(f"/submissions/{request_id}/accept").json()["state"] == "accepted"
    received = lab.post(f"/submissions/{request_id}/receive", {"received_count": 3}).json()
    assert received["state"] == "received" and received["received_count"] == 3 and received["due_at"]
    assert lab.post(f"/submissions/{request_id}/start").json()["state"] == "in_progress"
    assert _upload(lab, request_id).status_code == 201
    assert lab.post(f"/submissions/{request_id}/deliver", {"note": "see the PDF"}).json()["state"] == "delivered"
    completed = researcher.post(f"/submissions/{request_id}/complete").json()
    assert completed["state"] == "completed" and completed["completed_at"]
    rated = researcher.post(f"/submissions/{request_id}/rate", {"rating": 5}).json()
    assert rated["rating"] == 5
    assert researcher.post(f"/submissions/{request_id}/rate", {"rating": 2}).json()["code"] == "already_rated"

    history = [(event["move"], event["state_to"]) for event in rated["history"]]
    assert history == [("submitted", "submitted"), ("quote", "quoted"), ("accept", "accepted"),
                       ("receive", "received"), ("start", "in_progress"), ("deliver", "delivered"),
                       ("complete", "completed")]
    actions = list(AuditEvent.objects.filter(target_type="submissions.samplerequest", target_id=str(request_id))
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["submission.submitted", "submission.quoted", "submission.accepted", "submission.received",
                       "submission.started", "submission.file_added", "submission.delivered",
                       "submission.completed", "submission.rated"]
    call_command("verify_audit")


def test_every_move_is_idempotent(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, sample_instrument)["id"]
    for api, path, body in ((lab, "quote", quote_body()), (researcher, "accept", None), (lab, "receive", None),
                            (lab, "start", None)):
        first = api.post(f"/submissions/{request_id}/{path}", body)
        audited = AuditEvent.objects.count()
        mailed = len(mail.outbox)
        again = api.post(f"/submissions/{request_id}/{path}", body)
        assert first.status_code == again.status_code == 200, again.json()
        assert again.json()["state"] == first.json()["state"]
        assert AuditEvent.objects.count() == audited and len(mail.outbox) == mailed


def test_the_wrong_side_is_refused(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, sample_instrument)["id"]
    refused = researcher.post(f"/submissions/{request_id}/quote", quote_body())
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    lab.post(f"/submissions/{request_id}/quote", quote_body())
    assert lab.post(f"/submissions/{request_id}/accept").status_code == 403
    assert researcher.post(f"/submissions/{request_id}/receive").status_code == 403
    assert researcher.post(f"/submissions/{request_id}/reject", {"reason": "no"}).status_code == 403


def test_a_move_from_the_wrong_state_is_a_conflict(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, sample_instrument)["id"]
    for path in ("receive", "start", "deliver"):
        response = lab.post(f"/submissions/{request_id}/{path}")
        assert response.status_code == 409 and response.json()["code"] == "invalid_state", path
    assert researcher.post(f"/submissions/{request_id}/accept").json()["code"] == "invalid_state"
    assert researcher.post(f"/submissions/{request_id}/complete").status_code == 409


def test_an_expired_quote_cannot_be_accepted(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, sample_instrument)["id"]
    lab.post(f"/submissions/{request_id}/quote", quote_body(valid_days=2))
    with pytest.raises(Exception) as refused:
        services.accept_quote(actor=world.researcher, request_id=request_id,
                              now=dt.datetime.now(dt.UTC) + dt.timedelta(days=4))
    assert refused.value.code == "quote_expired" and refused.value.status == 409
    assert SampleRequest.objects.get(pk=request_id).state == "quoted"
    # Declining is still possible, and final.
    declined = researcher.post(f"/submissions/{request_id}/decline", {"reason": "too dear"}).json()
    assert declined["state"] == "declined" and declined["reason"] == "too dear"


def test_a_quote_valid_until_yesterday_is_refused(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, sample_instrument)["id"]
    response = lab.post(f"/submissions/{request_id}/quote", quote_body(valid_days=-2))
    assert response.status_code == 422 and response.json()["code"] == "invalid_validity"


def test_a_short_delivery_needs_a_note(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    request_id = _submit(researcher, sample_instrument)["id"]
    lab.post(f"/submissions/{request_id}/quote", quote_body())
    researcher.post(f"/submissions/{request_id}/accept")
    short = lab.post(f"/submissions/{request_id}/receive", {"received_count": 2})
    assert short.status_code == 422 and short.json()["code"] == "discrepancy_required"
    noted = lab.post(f"/submissions/{request_id}/receive", {"received_count": 2, "discrepancy": "one vial broken"})
    assert noted.json()["received_count"] == 2 and noted.json()["discrepancy"] == "one vial broken"


def test_cancelling_and_rejecting(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    first = _submit(researcher, sample_instrument)["id"]
    assert researcher.post(f"/submissions/{first}/cancel").json()["state"] == "cancelled"
    second = _submit(researcher, sample_instrument)["id"]
    assert lab.post(f"/submissions/{second}/reject", {"reason": ""}).json()["code"] == "reason_required"
    assert lab.post(f"/submissions/{second}/reject", {"reason": "we cannot measure liquids"}).json()["state"] == \
        "rejected"
    third = _to_in_progress(world, api_as, sample_instrument)
    # Once the samples are in, the requester cannot cancel; the lab can, with a reason.
    assert researcher.post(f"/submissions/{third}/cancel").json()["code"] == "invalid_state"
    assert lab.post(f"/submissions/{third}/cancel", {"reason": ""}).json()["code"] == "reason_required"
    assert lab.post(f"/submissions/{third}/cancel", {"reason": "tube failed"}).json()["state"] == "cancelled"
    assert lab.post(f"/submissions/{third}/reject", {"reason": "x"}).status_code == 409


def test_submissions_are_checked(world, api_as, sample_instrument, instrument):
    researcher = api_as(world.researcher)
    hazardous = researcher.post("/submissions", request_body(sample_instrument, hazards=["toxic"]))
    assert hazardous.status_code == 422 and hazardous.json()["code"] == "safety_statement_required"
    stated = _submit(researcher, sample_instrument, hazards=["toxic", "biological"],
                     safety_statement="Cyanide-free; handle with gloves in a fume hood.")
    assert stated["hazards"] == ["biological", "toxic"]
    unknown = researcher.post("/submissions", request_body(sample_instrument, hazards=["explosive"]))
    assert unknown.status_code == 422
    extra = researcher.post("/submissions", {**request_body(sample_instrument), "state": "completed"})
    assert extra.status_code == 422 and extra.json()["code"] == "invalid"
    slots = researcher.post("/submissions", request_body(sample_instrument, instrument_id=instrument.pk))
    assert slots.status_code == 422 and slots.json()["code"] == "not_sample_mode"
    other = researcher.post("/submissions", request_body(sample_instrument, analysis_ids=[999999]))
    assert other.json()["code"] == "unknown_analysis"
    too_many = researcher.post("/submissions", request_body(sample_instrument, sample_count=500))
    assert too_many.json()["code"] == "invalid_sample_count"


def test_the_form_estimate_uses_the_lab_list(world, api_as, sample_instrument):
    ids = list(sample_instrument.analyses.values_list("pk", flat=True))
    response = api_as(world.researcher).get(
        f"/submissions/estimate?instrument_id={sample_instrument.pk}&sample_count=4"
        + "".join(f"&analysis_ids={i}" for i in ids))
    assert response.status_code == 200, response.json()
    assert Decimal(response.json()["total"]) == Decimal("1400.00") and response.json()["binding"] is False
    service = api_as(world.researcher).get(f"/instruments/{sample_instrument.pk}/sample-service").json()
    assert service["turnaround_days"] == 7 and [a["code"] for a in service["analyses"]] == ["XRD-CRYST", "XRD-PHASE"]
    refused = api_as(world.researcher).put(f"/instruments/{sample_instrument.pk}/sample-service",
                                           {"turnaround_days": 3})
    assert refused.status_code == 403


def test_another_user_sees_neither_the_request_nor_its_files(world, api_as, sample_instrument):
    request_id = _to_in_progress(world, api_as, sample_instrument)
    lab = api_as(world.manager)
    file_id = _upload(lab, request_id).json()["id"]
    for user in (world.other_researcher, world.other_manager, world.company_user):
        api = api_as(user)
        assert api.get(f"/submissions/{request_id}").status_code == 404
        assert api.get(f"/submissions/{request_id}/files/{file_id}").status_code == 404
        assert api.post(f"/submissions/{request_id}/files/{file_id}/link").status_code == 404
        assert api.post(f"/submissions/{request_id}/cancel", {"reason": "x"}).status_code == 404
        assert api.get("/submissions").json()["count"] == 0
    download = api_as(world.researcher).get(f"/submissions/{request_id}/files/{file_id}")
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert download["Cache-Control"] == "private, no-store"


def test_files_are_type_checked_and_size_limited(world, api_as, sample_instrument, settings):
    request_id = _to_in_progress(world, api_as, sample_instrument)
    lab = api_as(world.manager)
    disguised = _upload(lab, request_id, name="results.pdf", content=b"MZ\x90\x00 an executable")
    assert disguised.status_code == 422 and disguised.json()["code"] == "invalid_file_type"
    renamed = _upload(lab, request_id, name="results.png", content=PDF)
    assert renamed.status_code == 422
    assert _upload(lab, request_id, name="pattern.xy", content=b"10.0 125\n10.1 130\n").status_code == 201
    settings.SUBMISSION_FILE_MAX_BYTES = 1024
    big = _upload(lab, request_id, content=PDF + b"0" * 2048)
    assert big.status_code == 422 and big.json()["code"] == "file_too_large"
    # The requester adds files only before the samples arrive.
    assert _upload(api_as(world.researcher), request_id).status_code == 409


def test_delivery_needs_result_files(world, api_as, sample_instrument):
    request_id = _to_in_progress(world, api_as, sample_instrument)
    refused = api_as(world.manager).post(f"/submissions/{request_id}/deliver")
    assert refused.status_code == 409 and refused.json()["code"] == "results_required"


def test_signed_links_expire(world, api_as, sample_instrument, client):
    import time_machine

    request_id = _to_in_progress(world, api_as, sample_instrument)
    lab = api_as(world.manager)
    file_id = _upload(lab, request_id).json()["id"]
    link = api_as(world.researcher).post(f"/submissions/{request_id}/files/{file_id}/link").json()
    path = link["url"].split("://", 1)[1].split("/", 1)[1]
    response = client.get(f"/{path}")
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)):
        assert client.get(f"/{path}").status_code == 404
    assert client.get(f"/{path[:-3]}x/").status_code == 404


def test_the_lab_queue_puts_overdue_work_first_and_receives_in_bulk(world, api_as, sample_instrument):
    researcher, lab = api_as(world.researcher), api_as(world.manager)
    ids = []
    for _ in range(3):
        request_id = _submit(researcher, sample_instrument)["id"]
        lab.post(f"/submissions/{request_id}/quote", quote_body())
        researcher.post(f"/submissions/{request_id}/accept")
        ids.append(request_id)
    outcome = lab.post("/submissions/receive", {"request_ids": ids[:2] + [999999]}).json()["outcome"]
    assert outcome == {str(ids[0]): "received", str(ids[1]): "received", "999999": "not_found"}
    # The first one received long ago is overdue.
    SampleRequest.objects.filter(pk=ids[1]).update(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    queue = lab.get("/submissions?role=lab").json()
    assert [item["id"] for item in queue["items"]][:2] == [ids[1], ids[0]]
    assert queue["items"][0]["overdue"] is True and queue["items"][1]["overdue"] is False
    assert [item["id"] for item in lab.get("/submissions?role=lab&state=accepted").json()["items"]] == [ids[2]]
    assert api_as(world.other_manager).get("/submissions?role=lab").json()["count"] == 0
