"""Finance exports: streamed CSV (UTF-8 with BOM) and XLSX (typed cells, totals), formula guard, scope, and
PostgreSQL's COPY path held to the generic writer's bytes."""

import csv
import datetime as dt
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import load_workbook

from billing import exports
from billing.models import BillingAccount, Charge
from billing.services import closing
from instrumentshare.core.spreadsheets import guarded
from tests.billing.conftest import MONTH, after_month, at, make_item
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db
ROWS = 3000


@pytest.fixture
def month_of_charges(world, billing):
    """One real charge from the close, and a few thousand adjustments written in bulk."""
    make_item(billing.instrument, world.company_user, start=at(8), minutes=90)
    billing.company.name = "=HYPERLINK(\"http://evil.example\",\"click\")"
    billing.company.save()
    Charge.objects.bulk_create([
        Charge(kind="adjustment", account=billing.lab_a if n % 2 else billing.company, provider=world.org_a,
               instrument=billing.instrument, period=MONTH, service_start=at(1 + n % 28), reason=f"batch {n}",
               amount=Decimal(n % 997) + Decimal("0.37")) for n in range(ROWS)], batch_size=1000)
    closing.close_period(actor=None, month=MONTH, now=after_month())
    return Charge.objects.filter(period=MONTH)


def keyed(rows) -> list[dict]:
    """CSV rows under the columns' stable keys (the file's headers are in the user's language)."""
    keys = dict(zip(exports.header_row("zh"), exports.HEADERS, strict=True))
    return [{keys[name]: value for name, value in row.items()} for row in rows]


def test_headers_are_chinese_by_default_and_english_on_request(world, api_as, month_of_charges):
    for fmt in ("csv", "xlsx"):
        for lang, first in ((None, "费用编号"), ("en", "Charge")):
            params = {"period": MONTH, "format": fmt, **({"lang": lang} if lang else {})}
            _chunks, body = read(api_as(world.finance).get("/billing/export", params))
            if fmt == "csv":
                header = next(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
            else:
                header = next(load_workbook(io.BytesIO(body), read_only=True).active.iter_rows(values_only=True))
            assert header[0] == first and len(header) == len(exports.HEADERS)
    assert api_as(world.finance).get("/billing/export", {"period": MONTH, "lang": "fr"}).status_code == 422


def read(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    return chunks, b"".join(chunks)


def test_the_csv_streams_with_a_bom_one_row_per_charge_and_a_total_that_adds_up(world, api_as, month_of_charges):
    response = api_as(world.finance).get("/billing/export", {"period": MONTH, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    chunks, body = read(response)
    assert len(chunks) > 3   # streamed in pieces, not built whole
    assert body.startswith("\ufeff".encode())
    rows = keyed(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    data, total = rows[:-1], rows[-1]
    assert len(data) == month_of_charges.count() == ROWS + 1
    expected = sum(c.amount for c in month_of_charges)
    assert sum(Decimal(r["amount"]) for r in data) == expected == Decimal(total["amount"])
    assert total["charge_id"] == "TOTAL" and int(total["period"]) == ROWS + 1
    assert Decimal(total["amount_due"]) == expected - Decimal(total["voucher_share"])
    invoiced = {r["invoice_number"] for r in data}
    assert "" not in invoiced and len(invoiced) == 2


def test_text_that_a_spreadsheet_would_run_is_quoted(world, api_as, month_of_charges):
    _chunks, body = read(api_as(world.finance).get("/billing/export", {"period": MONTH, "format": "csv"}))
    rows = keyed(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    names = {r["account_name"] for r in rows[:-1]}
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in names
    assert not any(name.startswith("=") for name in names)
    assert guarded("-1+2") == "'-1+2" and guarded("Lab A") == "Lab A"


def test_the_xlsx_has_typed_cells_and_totals(world, api_as, month_of_charges):
    response = api_as(world.finance).get("/billing/export", {"period": MONTH, "format": "xlsx"})
    assert response.status_code == 200
    _chunks, body = read(response)
    sheet = load_workbook(io.BytesIO(body), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    header, data, total = rows[0], rows[1:-1], rows[-1]
    amount = header.index(exports.label("amount"))
    assert len(data) == ROWS + 1
    assert all(isinstance(row[amount], int | float) for row in data)
    assert hasattr(data[0][header.index(exports.label("service_start"))], "year")
    assert Decimal(str(total[amount])) == sum(c.amount for c in month_of_charges)
    names = {row[header.index(exports.label("account_name"))] for row in data}
    # A cell typed as text is never run as a formula: the name is there as it was typed, no apostrophe.
    assert "=HYPERLINK(\"http://evil.example\",\"click\")" in names


def test_exports_are_for_finance_and_only_of_their_organization(world, api_as, month_of_charges):
    assert api_as(world.researcher).get("/billing/export", {"period": MONTH}).status_code == 403
    _chunks, body = read(api_as(world.other_finance).get("/billing/export", {"period": MONTH}))
    assert len(body.decode("utf-8-sig").strip().splitlines()) == 2   # header and an empty total
    response = api_as(world.other_finance).get("/billing/export", {"period": MONTH,
                                                                   "organization_id": world.org_a.pk})
    assert response.status_code == 404
    assert api_as(world.finance).get("/billing/export", {"period": "2026-13"}).status_code == 422


def test_the_finance_page_downloads_the_same_export(world, month_of_charges):
    from django.test import Client

    client = Client()
    client.force_login(world.finance)
    response = client.get("/billing/finance/export", {"period": MONTH, "format": "csv"})
    _chunks, body = read(response)
    assert body.decode("utf-8-sig").count("\n") == ROWS + 3


# --- the PostgreSQL path (COPY) against the generic one ------------------------------------------------

AWKWARD = ["=SUM(A1:A9)", "+1", "-1+2", "@cmd", "\tTab first", "\rCR first", "a,b", 'say "hi"', "line 1\nline 2",
           "crlf\r\nafter", " leading space", "中文，逗号；分号", "back\\slash", "'already quoted", "plain", "x" * 300]


@pytest.fixture
def awkward_charges(world, billing):
    """Charges whose every text column is something a CSV writer or a spreadsheet could get wrong."""
    make_item(billing.instrument, world.company_user, start=at(8), minutes=90)
    make_item(billing.instrument, world.researcher, start=at(9), minutes=120)
    world.researcher.full_name = ""  # the user column falls back to the username
    world.researcher.save()
    closing.close_period(actor=None, month=MONTH, now=after_month())
    project = BillingAccount.objects.create(kind="project", organization=world.org_a, number="=PRJ-1",
                                            name='Project, "quoted"\nsecond line', funding_programme="-国家,基金")
    accounts = [billing.lab_a, billing.company, project]
    new_york = zoneinfo.ZoneInfo("America/New_York")
    rows = []
    for n, reason in enumerate(AWKWARD * 3):
        # Around New York's 2026 spring-forward (8 March) and Berlin's (29 March), and plain days.
        start = dt.datetime(2026, 3, 7 + n % 3, n % 24, 30, tzinfo=new_york) if n % 2 else at(1 + n % 28)
        rows.append(Charge(kind="adjustment", account=accounts[n % 3], provider=world.org_a,
                           instrument=billing.instrument, user=None if n % 5 == 0 else world.researcher,
                           period=MONTH if n % 4 else "2026-03", service_start=start, reason=reason,
                           quantity=[Decimal("2"), Decimal("1.25"), Decimal("0"), Decimal("0.0001")][n % 4],
                           unit_price=Decimal("12.50"), amount=Decimal(n * 7 % 113) - Decimal("50.05"),
                           voucher_amount=Decimal("1.10") if n % 6 == 0 else Decimal("0")))
    Charge.objects.bulk_create(rows)
    return Charge.objects.all()


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Europe/Berlin", "UTC"])
def test_postgres_copy_writes_the_same_bytes_as_the_generic_writer(awkward_charges, zone):
    with timezone.override(zone), CaptureQueriesContext(connection) as queries:
        by_copy = b"".join(exports.csv_stream(exports.export_queryset(awkward_charges)))
        generic = b"".join(exports.csv_stream(list(exports.export_queryset(awkward_charges))))
        # Without line breaks inside cells, the rows take COPY's fast path (no second reading).
        flat = awkward_charges.exclude(reason__contains="\n").exclude(account__name__contains="\n")
        flat_by_copy = b"".join(exports.csv_stream(exports.export_queryset(flat)))
        flat_generic = b"".join(exports.csv_stream(list(exports.export_queryset(flat))))
    assert sum("REPEATABLE READ" in query["sql"] for query in queries.captured_queries) == 2  # the COPY path ran
    assert by_copy == generic
    assert flat_by_copy == flat_generic and flat_by_copy.count(b"\n") == flat.count() + 2
    rows = list(csv.reader(io.StringIO(by_copy.decode("utf-8-sig"), newline="")))
    assert len(rows) == awkward_charges.count() + 2
    assert {"'=SUM(A1:A9)", "'\rCR first", "line 1\nline 2", "crlf\r\nafter", "'-1+2"} <= {row[-1] for row in rows}


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_the_copy_path_streams_through_the_api(world, api_as, awkward_charges):
    response = api_as(world.finance).get("/billing/export", {"period": MONTH, "format": "csv"})
    chunks, body = read(response)
    expected = b"".join(exports.csv_stream(list(exports.export_queryset(awkward_charges.filter(period=MONTH)))))
    assert body == expected
    total = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))[-1]
    assert total[0] == "TOTAL" and int(total[1]) == awkward_charges.filter(period=MONTH).count()


def test_the_xlsx_reads_back_text_numbers_and_times_as_written(world, awkward_charges):
    body = b"".join(exports.xlsx_stream(exports.export_queryset(awkward_charges), title="2026-10"))
    workbook = load_workbook(io.BytesIO(body))
    sheet = workbook.active
    assert sheet.title == "2026-10"
    rows = list(sheet.iter_rows(values_only=True))
    header, data, total = rows[0], rows[1:-1], rows[-1]
    assert list(header) == exports.header_row("zh")
    expected = [exports._cells(row, timezone.get_current_timezone(), guarded=exports._plain_text)
                for row in exports.export_queryset(awkward_charges)]
    assert len(data) == len(expected)
    for got, want in zip(data, expected, strict=True):
        for index, (cell, value) in enumerate(zip(got, want, strict=True)):
            if isinstance(value, Decimal):
                assert Decimal(str(cell)) == value, exports.HEADERS[index]
            elif isinstance(value, dt.datetime):
                assert cell == value, exports.HEADERS[index]
            else:
                assert (cell if cell is not None else "") == ("" if value is None else value), exports.HEADERS[index]
    assert total[0] == "TOTAL" and total[1] == len(data)
    amount = header.index(exports.label("amount"))
    assert Decimal(str(total[amount])) == sum(c.amount for c in awkward_charges)
    cell = sheet.cell(row=2, column=amount + 1)
    assert cell.number_format == "#,##0.00" and sheet.cell(row=2, column=3).number_format == "yyyy-mm-dd hh:mm"
    assert sheet.cell(row=len(rows), column=1).font.b


def test_xml_text_escapes_what_xml_and_ooxml_would_misread():
    assert exports.xml_text("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    assert exports.xml_text("bell\x07 and cr\r\n") == "bell_x0007_ and cr&#13;\n"
    assert exports.xml_text("literal _x0041_ stays") == "literal _x005F_x0041_ stays"
    assert exports.xml_text("中文 plain_text") == "中文 plain_text"
