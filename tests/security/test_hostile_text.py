"""Hostile free text, entered through the real API and pages, never comes out as active markup.

The policy is in ``instrumentshare.core.text``: plain text everywhere, escaped for each output
(pages, JSON, e-mail, iCalendar, PDF, CSV/XLSX); the instrument's description is rich text limited
to a few formatting tags, sanitized with nh3 when saved and when shown.
"""

import csv
import datetime as dt
import email
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from icalendar import Calendar

from bookings.models import Booking
from catalog.models import Instrument
from tests.billing.conftest import MONTH, after_month, at, billing, make_item  # noqa: F401 - shared fixture

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'
LINK = '<a href="javascript:alert(1)">click</a>'
HOSTILE = f"{SCRIPT}{IMG}{LINK}<b onclick=\"alert(1)\">bold</b> =HYPERLINK(\"http://evil.example\",\"x\")"
# reportlab reads <font>, <para> and unclosed tags as its own markup: unescaped, these fail the PDF.
REPORTLAB = '<font name="NoSuchFont">x</font> <b>unclosed <para>'


class ActiveMarkup(HTMLParser):
    """Collects what a browser would run or follow: scripts we did not write, event handlers,
    javascript: URLs, and elements that load or embed anything."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes and attributes.get("type") != "application/json":
            self._in_script = True
        if tag in {"img", "iframe", "object", "embed", "svg", "math"}:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert" in data:
            self.found.append("script running alert")


def active_markup(page: str) -> list[str]:
    parser = ActiveMarkup()
    parser.feed(page)
    return parser.found


def page_of(user, path: str) -> str:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


def assert_inert(page: str) -> None:
    assert active_markup(page) == []
    assert "alert(" not in page or "&lt;script&gt;alert(" in page or "alert(&#x27;xss" in page


# --- the instrument: rich text and plain text side by side -------------------------------------


def test_the_instrument_description_keeps_formatting_and_loses_everything_active(world, api_as):
    body = {"lab": "lab-a", "name_zh": "扫描电镜", "name_en": IMG, "asset_number": "H-1", "category": "010102",
            "original_value": "250000.00", "funded_local": True,
            "specifications": f"Vacuum 10<sup>-9</sup> mbar, CO<sub>2</sub> {HOSTILE}\nResolution 1 nm",
            "main_functions": LINK, "service_content": "<p style=\"color:red\">Imaging</p><ul><li>EDS</li></ul>",
            "user_requirements": "Training first &amp; always, 0<T<300 K", "fee_standard": SCRIPT}
    api = api_as(world.manager)
    created = api.post("/instruments", body)
    assert created.status_code == 201, created.content
    data = created.json()
    for name in ("specifications", "main_functions", "service_content", "user_requirements"):
        assert active_markup(data[name]) == [], name
        assert "<script" not in data[name] and "<img" not in data[name] and "javascript:" not in data[name]
    assert "10<sup>-9</sup> mbar, CO<sub>2</sub>" in data["specifications"]
    assert "<b>bold</b>" in data["specifications"]
    assert data["main_functions"] == "click"
    assert data["service_content"] == "<p>Imaging</p><ul><li>EDS</li></ul>"
    assert data["user_requirements"] == "Training first &amp; always, 0<T<300 K"  # no markup: kept as typed
    assert data["name_en"] == IMG and data["fee_standard"] == SCRIPT  # plain text: data, escaped where shown
    stored = Instrument.objects.get(pk=data["id"])
    assert stored.main_functions == "click" and "onerror" not in stored.specifications

    api.post(f"/instruments/{stored.pk}/publish")
    page = page_of(world.researcher, f"/instruments/{stored.pk}/")
    assert_inert(page)
    assert "10<sup>-9</sup> mbar" in page and "<ul><li>EDS</li></ul>" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page  # the plain-text name, escaped
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in page  # the plain-text fee standard
    assert "0&lt;T&lt;300 K" in page  # a lone "<" is text, not a tag, and is kept
    assert "Training first &amp;amp; always" in page


def test_a_patch_is_sanitized_as_the_create_is(world, api_as, instrument):
    response = api_as(world.manager).patch(f"/instruments/{instrument.pk}",
                                           {"main_functions": f"<i>EDS</i> {IMG}{SCRIPT}"})
    assert response.status_code == 200
    assert response.json()["main_functions"] == "<i>EDS</i> "
    assert_inert(page_of(world.researcher, f"/instruments/{instrument.pk}/"))


def test_a_row_written_around_the_service_is_still_shown_safely(world, api_as, instrument):
    Instrument.objects.filter(pk=instrument.pk).update(specifications=f"<sup>2</sup>{IMG}{SCRIPT}{LINK}")
    page = page_of(world.researcher, f"/instruments/{instrument.pk}/")
    assert_inert(page)
    assert "<sup>2</sup>" in page
    assert api_as(world.researcher).get(f"/instruments/{instrument.pk}").json()["specifications"] == "<sup>2</sup>click"


def test_the_edit_page_sanitizes_the_description_too(world, instrument):
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(world.manager)
    form = client.get(f"/instruments/{instrument.pk}/edit/").context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(category=instrument.category_id, purchase_date="", acceptance_date="",
                specifications=f"<sub>x</sub>{IMG}")
    response = client.post(f"/instruments/{instrument.pk}/edit/", data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    assert Instrument.objects.get(pk=instrument.pk).specifications == "<sub>x</sub>"


def test_an_import_sanitizes_the_description_and_reports_a_name_with_a_line_break(world, api_as):
    from tests.catalog.test_import import HEADER, csv_bytes, upload

    rows = [["扫描电镜", "SEM", "IMP-1", "010102", "中央财政", "1000000", "Zeiss", "X", "2020-01-01", "", "", "", ""],
            ["核磁\n共振", "NMR", "IMP-2", "010102", "中央财政", "1000000", "Bruker", "Y", "2020-01-01", "", "", "",
             ""]]
    header = [*HEADER, "主要功能"]
    rows[0].append(f"<b>SEM</b>{SCRIPT}")
    rows[1].append("")
    result = upload(api_as(world.manager), csv_bytes(rows, header=header), "x.csv", lab="lab-a", dry_run="true")
    problems = result.json()["problems"]
    assert [p["line"] for p in problems] == [3] and "one line" in problems[0]["message"]
    fixed = upload(api_as(world.manager), csv_bytes(rows[:1], header=header), "x.csv", lab="lab-a",
                   dry_run="false")
    assert fixed.status_code == 201, fixed.content
    assert Instrument.objects.get(asset_number="IMP-1").main_functions == "<b>SEM</b>"


@pytest.mark.parametrize("field", ["name_zh", "name_en", "address", "contact_name"])
def test_one_line_fields_refuse_line_breaks(world, api_as, instrument, field):
    response = api_as(world.manager).patch(f"/instruments/{instrument.pk}", {field: "SEM\nBcc: victim@example.org"})
    assert response.status_code == 422 and field in response.json()["detail"]


# --- bookings: pages, e-mail, iCalendar -------------------------------------------------------


def test_a_hostile_purpose_and_reason_stay_text_on_pages_in_mail_and_in_calendars(
        world, api_as, instrument, slot, django_capture_on_commit_callbacks):
    start, end = slot
    with django_capture_on_commit_callbacks(execute=True):
        created = api_as(world.researcher).post("/bookings", {
            "instrument_id": instrument.pk, "start": start.isoformat(), "end": end.isoformat(),
            "purpose": f"{HOSTILE}\n{REPORTLAB}"})
    assert created.status_code == 201, created.content
    booking = Booking.objects.get(pk=created.json()["id"])
    assert created.json()["purpose"] == f"{HOSTILE}\n{REPORTLAB}"  # JSON carries the text as typed

    for user, path in [(world.researcher, f"/bookings/{booking.pk}/"), (world.manager, f"/bookings/{booking.pk}/"),
                       (world.manager, "/bookings/lab/"), (world.researcher, "/bookings/mine/")]:
        assert_inert(page_of(user, path))
    assert "&lt;img src=x onerror=" in page_of(world.researcher, f"/bookings/{booking.pk}/")

    [message] = mail.outbox
    parsed = email.message_from_bytes(message.message().as_bytes())
    types = [part.get_content_type() for part in parsed.walk()]
    assert "text/html" not in types  # plain text mail only: nothing for a mail client to run
    assert HOSTILE in message.body
    [calendar_part] = [part for part in parsed.walk() if part.get_content_type() == "text/calendar"]
    calendar = Calendar.from_ical(calendar_part.get_payload(decode=True))
    [event] = [c for c in calendar.walk() if c.name == "VEVENT"]
    assert str(event["DESCRIPTION"]).startswith(f"{HOSTILE}\n{REPORTLAB}")  # text, round-tripped exactly
    assert "X-ALT-DESC" not in calendar.to_ical().decode()  # no HTML description for clients to render

    with django_capture_on_commit_callbacks(execute=True):
        cancelled = api_as(world.manager).post(f"/bookings/{booking.pk}/cancel", {"reason": HOSTILE})
    assert cancelled.status_code == 200, cancelled.content
    assert_inert(page_of(world.researcher, f"/bookings/{booking.pk}/"))


# --- the catalog's other free text ------------------------------------------------------------


def test_justifications_training_messages_downtime_and_notes_are_escaped(world, api_as, instrument):
    manager, researcher = api_as(world.manager), api_as(world.researcher)
    assert manager.post(f"/instruments/{instrument.pk}/listing-requests",
                        {"kind": "not_shared", "justification": f"{HOSTILE} long enough"}).status_code == 201
    assert researcher.post(f"/instruments/{instrument.pk}/training-requests", {"message": HOSTILE}).status_code == 201
    downtime = manager.post(f"/instruments/{instrument.pk}/downtime", {
        "start": (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat(),
        "end": (dt.datetime.now(dt.UTC) + dt.timedelta(days=3, hours=2)).isoformat(), "reason": HOSTILE[:300]})
    assert downtime.status_code == 201, downtime.content
    assert manager.post(f"/instruments/{instrument.pk}/qualifications",
                        {"username": "other_researcher", "note": HOSTILE[:300]}).status_code == 201
    for user, path in [(world.bureau, "/instruments/requests/"),
                       (world.manager, f"/instruments/{instrument.pk}/qualifications/"),
                       (world.manager, f"/instruments/{instrument.pk}/downtime/"),
                       (world.manager, f"/instruments/{instrument.pk}/manage/"),
                       (world.researcher, f"/instruments/{instrument.pk}/")]:
        assert_inert(page_of(user, path))


def test_exported_spreadsheets_quote_formulas(world, api_as):
    from tests.bookings.conftest import make_instrument

    make_instrument(world, name='=HYPERLINK("http://evil.example","x")', asset_number="+1-EVIL",
                    manufacturer="@SUM(A1)")
    response = api_as(world.manager).get("/instruments/export", {"lab": "lab-a"})
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in cells and "'+1-EVIL" in cells and "'@SUM(A1)" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]


# --- billing: the invoice page and its PDF ----------------------------------------------------


def test_hostile_payer_details_and_reasons_stay_text_on_the_invoice_page_and_pdf(world, api_as, billing):  # noqa: F811
    from billing.models import Invoice
    from billing.services import closing

    finance = api_as(world.finance)
    changed = finance.patch(f"/billing/accounts/{billing.lab_a.pk}", {
        "billing_name": f"{REPORTLAB}{IMG}"[:200], "billing_address": SCRIPT, "contact_name": "<b>Zhou"})
    assert changed.status_code == 200, changed.content
    make_item(billing.instrument, world.researcher, start=at(8), minutes=90)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoice = Invoice.objects.get(account=billing.lab_a)
    assert invoice.payer_name.startswith("<font")
    credit = finance.post(f"/billing/invoices/{invoice.pk}/credit-notes", {"reason": f"{REPORTLAB} {SCRIPT}"})
    assert credit.status_code == 201, credit.content

    for number in (invoice.pk, credit.json()["id"]):
        assert_inert(page_of(world.finance, f"/billing/invoices/{number}/"))
        pdf = finance.get(f"/billing/invoices/{number}/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        page_pdf = Client()
        page_pdf.force_login(world.finance)
        assert page_pdf.get(f"/billing/invoices/{number}/pdf").status_code == 200


# --- the charts' data in the page's JSON ------------------------------------------------------


def test_a_name_that_closes_the_script_tag_cannot_leave_the_charts_json(world):
    from oversight.services import refresh_statistics
    from tests.oversight.conftest import build_city

    build_city(world)
    world.lab_a.name_zh = f"</script>{SCRIPT}"
    world.lab_a.save()
    world.org_a.name_zh = f"</script>{IMG}"
    world.org_a.save()
    refresh_statistics(year=2025)
    page = page_of(world.bureau, "/oversight/?year=2025")
    assert_inert(page)
    data = re.findall(r'<script id="chart-data-[^"]+" type="application/json">(.*?)</script>', page, re.S)
    assert data and all("</script" not in block.lower() for block in data)
    assert any("\\u003C/script\\u003E" in block for block in data)


# --- our own scripts ----------------------------------------------------------------------------


def test_every_inline_script_in_our_templates_carries_the_csp_nonce():
    """The content security policy allows inline scripts only with the request's nonce."""
    root = Path(__file__).resolve().parents[2]
    missing = []
    templates = [*root.glob("*/templates/**/*.html"), *root.glob("instrumentshare/*/templates/**/*.html")]
    assert len(templates) > 20
    for template in templates:
        tags = re.findall(r"<script\b[^>]*>", template.read_text())
        missing += [f"{template.relative_to(root)}: {tag}" for tag in tags if "src=" not in tag and "nonce=" not in tag]
    assert missing == []
