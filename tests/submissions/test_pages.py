"""The pages: send samples from the instrument page, the requester's list, the lab's queue (filter,
overdue first, bulk receive), the request page with its history and moves, in both languages."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from submissions.models import SampleRequest

from .conftest import PDF, quote_body

pytestmark = pytest.mark.django_db


def logged_in(user, language="en") -> Client:
    client = Client(headers={"Accept-Language": language})
    client.force_login(user)
    return client


def _send(client, instrument, **extra):
    analyses = [str(pk) for pk in instrument.analyses.values_list("pk", flat=True)]
    return client.post(f"/submissions/new/{instrument.pk}/", {
        "sample_count": 2, "sample_type": "alloy coupon", "sample_state": "solid", "analyses": analyses,
        "after_use": "return", "note": "polished", **extra})


def test_a_researcher_sends_samples_from_the_instrument_page(world, sample_instrument):
    client = logged_in(world.researcher)
    page = client.get(f"/instruments/{sample_instrument.pk}/")
    assert page.status_code == 200 and f"/submissions/new/{sample_instrument.pk}/" in page.content.decode()
    form = client.get(f"/submissions/new/{sample_instrument.pk}/")
    assert form.status_code == 200 and "Phase analysis" in form.content.decode()
    refused = _send(client, sample_instrument, hazards=["radioactive"])
    assert refused.status_code == 200 and 'data-testid="form-error"' in refused.content.decode()
    sent = _send(client, sample_instrument)
    request = SampleRequest.objects.get(requester=world.researcher)
    assert sent.status_code == 302 and sent["Location"] == f"/submissions/{request.pk}/"
    listing = client.get("/submissions/").content.decode()
    assert f'data-request="{request.pk}"' in listing and 'data-state="submitted"' in listing


def test_the_pages_speak_chinese(world, sample_instrument):
    client = logged_in(world.researcher, "zh-hans")
    _send(client, sample_instrument)
    request = SampleRequest.objects.get()
    page = client.get(f"/submissions/{request.pk}/").content.decode()
    assert "已提交" in page and "样品数量" in page


def test_the_request_page_walks_through_the_work(world, sample_instrument, api_as):
    researcher, lab = logged_in(world.researcher), logged_in(world.manager)
    _send(researcher, sample_instrument)
    request = SampleRequest.objects.get()
    base = f"/submissions/{request.pk}/"
    quote_page = lab.get(base).content.decode()
    assert 'data-testid="quote-form"' in quote_page
    prices = {f"price_{a.pk}": "100.00" for a in request.analyses.all()}
    valid = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    assert lab.post(base + "quote", {"valid_until": valid, "discount_percent": "0", **prices}).status_code == 302
    assert "400.00" in researcher.get(base).content.decode()   # 2 samples × 2 analyses × 100
    # The researcher cannot quote; the refusal is a message on the page, not an error.
    refused = researcher.post(base + "start", follow=True)
    assert refused.status_code == 200 and "Only the instrument" in refused.content.decode()
    researcher.post(base + "accept")
    lab.post(base + "receive", {"received_count": 2})
    lab.post(base + "start")
    lab.post(base + "upload", {"file": SimpleUploadedFile("result.pdf", PDF)})
    lab.post(base + "deliver")
    researcher.post(base + "complete")
    researcher.post(base + "rate", {"rating": 4})
    request.refresh_from_db()
    assert request.state == "completed" and request.rating == 4
    page = researcher.get(base).content.decode()
    for move in ("quote", "accept", "receive", "start", "deliver", "complete"):
        assert f"· {move} →" in page
    file_id = request.attachments.get().pk
    download = researcher.get(f"{base}files/{file_id}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    stranger = logged_in(world.other_researcher)
    assert stranger.get(base).status_code == 404
    assert stranger.get(f"{base}files/{file_id}/").status_code == 404
    assert stranger.post(base + "cancel", {"reason": "x"}).status_code == 404


def test_the_lab_queue_filters_puts_overdue_first_and_receives_in_bulk(world, sample_instrument, api_as):
    researcher_api, lab_api = api_as(world.researcher), api_as(world.manager)
    ids = []
    for _ in range(3):
        request_id = researcher_api.post("/submissions", {
            "instrument_id": sample_instrument.pk, "sample_count": 3, "sample_type": "powder",
            "sample_state": "powder", "analysis_ids": list(sample_instrument.analyses.values_list("pk", flat=True))}
        ).json()["id"]
        lab_api.post(f"/submissions/{request_id}/quote", quote_body())
        researcher_api.post(f"/submissions/{request_id}/accept")
        ids.append(request_id)
    lab = logged_in(world.manager)
    lab.post("/submissions/lab/receive", {"request_ids": [ids[0], ids[2]]})
    assert list(SampleRequest.objects.filter(pk__in=ids).order_by("pk").values_list("state", flat=True)) == [
        "received", "accepted", "received"]
    SampleRequest.objects.filter(pk=ids[2]).update(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    queue = lab.get("/submissions/lab/").content.decode()
    assert queue.index(f'data-request="{ids[2]}"') < queue.index(f'data-request="{ids[0]}"')
    assert 'data-testid="overdue"' in queue
    accepted = lab.get("/submissions/lab/?state=accepted").content.decode()
    assert f'data-request="{ids[1]}"' in accepted and f'data-request="{ids[0]}"' not in accepted
    assert 'data-request=' not in logged_in(world.other_manager).get("/submissions/lab/").content.decode()
