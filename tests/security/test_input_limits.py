"""Limits on what one request may ask for or send: page sizes, date ranges, body and upload sizes,
rows, and XLSX files that would inflate to far more than they weigh. Each beyond its limit is a 4xx
with a JSON body that says which limit, never a 500 and never an attempt to do it anyway."""

import io
import tracemalloc
import zipfile

import pytest
from django.test import Client
from openpyxl import Workbook

pytestmark = pytest.mark.django_db

# (who, path, a query one past the cap)
PAGE_CAPS = [
    ("researcher", "/instruments", {"page_size": 101}),
    ("researcher", "/bookings", {"limit": 201}),
    ("researcher", "/bookings", {"offset": 10**7 + 1}),
    ("finance", "/billing/charges", {"limit": 201}),
    ("finance", "/billing/invoices", {"limit": 201}),
    ("finance", "/billing/accounts", {"limit": 501}),
    ("finance", "/billing/vouchers", {"limit": 501}),
    ("finance", "/billing/my-costs", {"limit": 501}),
    ("finance", "/billing/payments", {"limit": 501}),
    ("bureau", "/audit/events", {"limit": 201}),
    ("bureau", "/oversight/statistics", {"limit": 5001}),
]


@pytest.mark.parametrize(("who", "path", "query"), PAGE_CAPS)
def test_a_page_larger_than_the_cap_is_refused(world, api_as, who, path, query):
    response = api_as(getattr(world, who)).get(path, query)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid"


def test_the_catalog_page_size_cap_is_the_one_the_api_announces():
    from catalog import queries

    assert queries.MAX_PAGE_SIZE == 100  # PAGE_CAPS asks for one more


@pytest.mark.parametrize(("who", "path", "query"), [(w, p, {k: 1}) for w, p, q in PAGE_CAPS for k in q
                                                     if k != "offset"])
def test_a_page_within_the_cap_is_served(world, api_as, who, path, query):
    assert api_as(getattr(world, who)).get(path, query).status_code == 200


def test_windowed_billing_lists_page_with_limit_and_offset(world, api_as):
    from billing import services

    for number in range(3):
        services.create_account(actor=world.finance, kind="project", organization=world.org_a, number=f"P-{number}",
                                name=f"Project {number}", pi=world.researcher)
    api = api_as(world.finance)
    everything = [row["id"] for row in api.get("/billing/accounts").json()]
    assert len(everything) >= 3
    assert [row["id"] for row in api.get("/billing/accounts", {"limit": 2}).json()] == everything[:2]
    assert [row["id"] for row in api.get("/billing/accounts", {"limit": 2, "offset": 2}).json()] == everything[2:4]


def test_date_ranges_are_capped(world, api_as, instrument):
    api = api_as(world.researcher)
    long = {"start": "2026-01-01T00:00:00+08:00", "end": "2026-06-01T00:00:00+08:00"}
    availability = api.get(f"/instruments/{instrument.pk}/availability", long)
    assert availability.status_code == 422 and availability.json()["code"] == "range_too_long"
    ten_years = {"start": "2020-01-01T00:00:00+08:00", "end": "2031-01-01T00:00:00+08:00"}
    listing = api.get("/bookings", ten_years)
    assert listing.status_code == 422 and listing.json()["code"] == "range_too_long"
    free = api.get("/instruments", {"free_from": "2026-01-01T00:00:00+08:00", "free_to": "2026-03-01T00:00:00+08:00",
                                    "free_hours": 2})
    assert free.status_code == 422 and free.json()["code"] == "invalid_range"
    client = Client()
    client.force_login(world.researcher)
    events = client.get(f"/bookings/instrument/{instrument.pk}/events", long)
    assert events.status_code == 422 and events.json()["code"] == "range_too_long"
    statistics = api_as(world.bureau).get("/oversight/statistics", {"year": 1900})
    assert statistics.status_code == 422


def test_numbers_too_large_for_the_database_are_never_a_500(world, api_as):
    api = api_as(world.bureau)
    for path, query in [("/oversight/statistics", {"offset": 10**30}),
                        ("/oversight/statistics", {"organization": 10**30}),
                        ("/oversight/statistics", {"lab": -(10**30)}),
                        ("/billing/accounts", {"offset": 10**30}),
                        ("/billing/invoices/1/charges", {"offset": 10**30})]:
        response = api.get(path, query)
        assert response.status_code < 500, (path, query, response.status_code)
        assert response["Content-Type"].startswith("application/json")


def test_a_json_body_over_the_limit_is_a_413_in_json(world, api_as, settings):
    body = '{"purpose": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + '"}'
    response = api_as(world.researcher).post("/bookings", raw=body)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


# --- spreadsheets that inflate -------------------------------------------------------------------


def _workbook_with_one_huge_cell(uncompressed: int, header: list[str]) -> bytes:
    """A real workbook whose first sheet holds one cell of ``uncompressed`` bytes: a few hundred
    kilobytes on the wire, written in pieces so the test itself never holds it whole."""
    workbook = Workbook()
    workbook.active.append(header)
    plain = io.BytesIO()
    workbook.save(plain)
    source = zipfile.ZipFile(io.BytesIO(plain.getvalue()))
    result = io.BytesIO()
    with zipfile.ZipFile(result, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for member in source.infolist():
            if member.filename != "xl/worksheets/sheet1.xml":
                archive.writestr(member, source.read(member))
                continue
            with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
                sheet.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                            b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>')
                chunk = b"a" * 2**20
                for _ in range(uncompressed // len(chunk)):
                    sheet.write(chunk)
                sheet.write(b"</t></is></c></row></sheetData></worksheet>")
    return result.getvalue()


def _peak_memory_of(call) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _logbook_upload(user, content: bytes, name: str = "log.xlsx"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from instrumentshare.accounts.services import create_api_token

    token = create_api_token(user=user, name="t")[1]
    return Client().post("/api/v1/usage/import?dry_run=true", {"file": SimpleUploadedFile(name, content)},
                         headers={"Authorization": f"Bearer {token}"})


def _catalog_upload(api, content: bytes, name: str = "bomb.xlsx"):
    file = io.BytesIO(content)
    file.name = name
    return api.client.post("/api/v1/instruments/import?lab=lab-a", {"file": file}, headers=api.headers)


LOGBOOK_HEADER = ["资产编号", "用户名", "开始时间", "结束时间", "样品数"]


@pytest.mark.parametrize("importer", ["logbook", "catalog"])
def test_a_huge_sheet_is_refused_before_openpyxl_inflates_it(world, api_as, importer):
    bomb = _workbook_with_one_huge_cell(80 * 2**20, LOGBOOK_HEADER)
    assert len(bomb) < 1 * 2**20
    api = api_as(world.manager)
    upload = (lambda: _logbook_upload(world.manager, bomb)) if importer == "logbook" else \
        (lambda: _catalog_upload(api, bomb))
    response, peak = _peak_memory_of(upload)
    assert response.status_code == 422
    assert response.json()["code"] == "file_too_large"
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB were allocated to refuse it"


@pytest.mark.parametrize("importer", ["logbook", "catalog"])
def test_a_sheet_compressed_a_thousandfold_is_refused_even_under_the_size_cap(world, api_as, importer):
    bomb = _workbook_with_one_huge_cell(20 * 2**20, LOGBOOK_HEADER)
    response = _logbook_upload(world.manager, bomb) if importer == "logbook" else \
        _catalog_upload(api_as(world.manager), bomb)
    assert response.status_code == 422
    assert response.json()["code"] == "file_too_large"


def test_a_zip_that_is_no_workbook_is_a_clear_422_for_the_logbook(world, instrument):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    response = _logbook_upload(world.manager, buffer.getvalue())
    assert response.status_code == 422 and response.json()["code"] == "invalid_file"
    damaged = _logbook_upload(world.manager, b"PK\x03\x04 not really")
    assert damaged.status_code == 422 and damaged.json()["code"] == "invalid_file"


def test_more_than_5000_logbook_rows_are_refused(world, instrument):
    rows = "\n".join(f"A-1,researcher,2026-11-03 09:00,2026-11-03 10:00,{n}" for n in range(5001))
    response = _logbook_upload(world.manager, ("asset_number,username,start,end,samples\n" + rows).encode(), "log.csv")
    assert response.status_code == 422 and response.json()["code"] == "too_many_rows"


def test_an_upload_over_5_mb_is_refused_by_both_importers(world, api_as):
    big = b"a,b\n" + b"x" * (5 * 2**20 + 1)
    assert _logbook_upload(world.manager, big, "log.csv").json()["code"] == "file_too_large"
    catalog = _catalog_upload(api_as(world.manager), big, "big.csv")
    assert catalog.status_code == 422 and catalog.json()["code"] == "file_too_large"
