"""A sample request from submission to the results' download and rating, as researcher and lab manager;
another user can see neither the request nor its files."""

import datetime as dt
from decimal import Decimal

import pytest

from submissions import services
from submissions.models import SampleRequest
from tests.bookings.conftest import make_instrument

pytestmark = pytest.mark.browser
PDF = b"%PDF-1.4\n% results\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _switch(page, login, username):
    page.context.clear_cookies()
    login(username)


def _act(page, testid):
    with page.expect_navigation():
        page.click(f"[data-testid={testid}]")


def test_a_request_from_submission_to_download_and_rating(world, page, login, tmp_path):
    instrument = make_instrument(world, name="送样仪器", policy={"mode": "samples", "charge_mode": "per_sample"})
    analysis = services.add_analysis(actor=world.manager, instrument_id=instrument.pk, code="PHASE",
                                     name_zh="物相分析", name_en="Phase analysis", price_per_sample=Decimal("120"))
    login("researcher")
    page.goto(f"/instruments/{instrument.pk}/")
    _act(page, "send-samples")
    page.fill("#id_sample_count", "2")
    page.fill("#id_sample_type", "TiO2 powder")
    page.select_option("#id_sample_state", "powder")
    page.check(f"input[name=analyses][value='{analysis.pk}']")
    page.check("input[name=after_use][value=return]")
    _act(page, "submit-request")
    request = SampleRequest.objects.get(requester=world.researcher)
    assert page.url.endswith(f"/submissions/{request.pk}/")
    assert page.locator("[data-testid=state]").first.get_attribute("data-state") == "submitted"

    _switch(page, login, "manager")
    page.goto(f"/submissions/{request.pk}/")
    page.fill("#id_valid_until", (dt.date.today() + dt.timedelta(days=14)).isoformat())
    _act(page, "send-quote")
    assert "240.00" in page.locator("[data-testid=quote-total]").inner_text()

    _switch(page, login, "researcher")
    page.goto(f"/submissions/{request.pk}/")
    _act(page, "accept")

    _switch(page, login, "manager")
    page.goto("/submissions/lab/")
    page.check(f"[data-testid=receive-{request.pk}]")
    _act(page, "bulk-receive")
    page.goto(f"/submissions/{request.pk}/")
    _act(page, "start")
    result = tmp_path / "results.pdf"
    result.write_bytes(PDF)
    page.set_input_files("#id_file", str(result))
    _act(page, "upload")
    _act(page, "deliver")

    _switch(page, login, "researcher")
    page.goto(f"/submissions/{request.pk}/")
    with page.expect_download() as download:
        page.click("[data-testid=file-result]")
    assert open(download.value.path(), "rb").read() == PDF
    _act(page, "complete")
    page.select_option("#id_rating", "5")
    _act(page, "rate")
    assert page.locator("[data-testid=rating]").inner_text().startswith("5")
    request.refresh_from_db()
    assert request.state == "completed" and request.rating == 5
    history = page.locator("[data-testid=history] li").all_inner_texts()
    assert [line.split(" · ")[2] for line in history] == [
        "submitted → submitted", "quote → quoted", "accept → accepted", "receive → received",
        "start → in_progress", "deliver → delivered", "complete → completed"]

    file_id = request.attachments.get().pk
    _switch(page, login, "other_researcher")
    assert page.goto(f"/submissions/{request.pk}/").status == 404
    assert page.goto(f"/submissions/{request.pk}/files/{file_id}/").status == 404
