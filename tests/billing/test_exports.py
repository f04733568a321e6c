"""Finance exports: streamed CSV (UTF-8 with BOM) and XLSX (typed cells, totals), formula guard, scope."""

import csv
import io
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from openpyxl import load_workbook

from billing import closing, exports
from billing.models import Charge
from tests.billing.conftest import MONTH, after_month, at, make_item

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
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
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
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    names = {r["account_name"] for r in rows[:-1]}
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in names
    assert not any(name.startswith("=") for name in names)
    assert exports.safe_text("-1+2") == "'-1+2" and exports.safe_text("Lab A") == "Lab A"


def test_the_xlsx_has_typed_cells_and_totals(world, api_as, month_of_charges):
    response = api_as(world.finance).get("/billing/export", {"period": MONTH, "format": "xlsx"})
    assert response.status_code == 200
    _chunks, body = read(response)
    sheet = load_workbook(io.BytesIO(body), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    header, data, total = rows[0], rows[1:-1], rows[-1]
    amount = header.index("amount")
    assert len(data) == ROWS + 1
    assert all(isinstance(row[amount], int | float) for row in data)
    assert hasattr(data[0][header.index("service_start")], "year")
    assert Decimal(str(total[amount])) == sum(c.amount for c in month_of_charges)
    names = {row[header.index("account_name")] for row in data}
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in names


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
