"""National platform export: each organization's quarter stored once with every record it contained, written
by the transport behind one interface, idempotent, and retried when sending failed."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.test import Client, override_settings

from instrumentshare.core.errors import Invalid
from oversight import services
from oversight.models import NationalExport
from tests.oversight.conftest import SHANGHAI, YEAR

pytestmark = pytest.mark.django_db
AFTER_Q1 = dt.datetime(YEAR, 4, 20, 9, tzinfo=SHANGHAI)


class BrokenTransport:
    name = "broken"

    def send(self, *, export, content: bytes) -> str:
        raise ConnectionError("national platform unreachable")


@pytest.fixture
def exports_dir(tmp_path, settings):
    settings.OVERSIGHT_EXPORT_DIR = str(tmp_path / "exports")
    return tmp_path / "exports"


@pytest.fixture
def refreshed(world, city):
    services.refresh_statistics(year=YEAR)
    return city


def test_a_quarter_is_exported_with_its_instruments_service_records_and_annual_report(world, refreshed, exports_dir):
    export, created = services.export_quarter(actor=world.bureau, organization_id=world.org_a.pk, period="2025-Q1",
                                              now=AFTER_Q1)
    assert created and export.sent_at is not None and export.transport == "local-file"
    payload = export.payload
    assert payload["period"] == "2025-Q1" and payload["organization"]["name_zh"] == "甲大学"
    instruments = {row["asset_number"]: row for row in payload["instruments"]}
    assert set(instruments) == {"OV-电镜", "OV-核磁"}
    # Run hours January to March: sem 270 min (two sessions and their allowance), 120 of them external.
    assert (instruments["OV-电镜"]["annual_run_hours"], instruments["OV-电镜"]["annual_service_hours"]) == (
        "4.50", "2.00")
    records = payload["service_records"]
    assert len(records) == 3 and {r["instrument_asset_number"] for r in records} == {"OV-电镜", "OV-核磁"}
    external = next(r for r in records if not r["internal"])
    assert (external["applicant_organization"], external["fee"], external["rating"]) == ("乙研究所", "400.00", 4)
    report = payload["annual_report"]
    assert (report["through"], report["effective_hours"], report["complete"]) == ("2025-03-31", "9.50", False)
    written = exports_dir / str(world.org_a.pk) / "2025-Q1.json"
    assert json.loads(written.read_bytes()) == payload
    assert export.destination == str(written)
    assert (export.instrument_count, export.service_record_count) == (2, 3)


def test_exporting_a_quarter_again_returns_the_stored_export_unchanged(world, refreshed, exports_dir, api_as):
    first, _created = services.export_quarter(actor=world.bureau, organization_id=world.org_a.pk, period="2025-Q1",
                                              now=AFTER_Q1)
    written = (exports_dir / str(world.org_a.pk) / "2025-Q1.json").read_bytes()
    again, created = services.export_quarter(actor=world.bureau, organization_id=world.org_a.pk, period="2025-q1",
                                             now=AFTER_Q1 + dt.timedelta(days=30))
    assert not created and again.pk == first.pk and again.digest == first.digest
    response = api_as(world.bureau).post("/oversight/exports", {"organization_id": world.org_a.pk,
                                                                "period": "2025-Q1"})
    assert response.status_code == 200 and response.json()["id"] == first.pk
    assert NationalExport.objects.count() == 1
    assert (exports_dir / str(world.org_a.pk) / "2025-Q1.json").read_bytes() == written


def test_the_periodic_export_waits_for_the_quarter_then_exports_every_reporting_organization_once(
        world, refreshed, exports_dir):
    assert services.export_due(today=dt.date(YEAR, 4, 5), now=AFTER_Q1) == []  # 5 days after: too early
    done = services.export_due(today=dt.date(YEAR, 4, 15), now=AFTER_Q1)
    assert sorted(e.organization_id for e in done) == [world.org_a.pk, world.org_b.pk]
    services.export_due(today=dt.date(YEAR, 4, 16), now=AFTER_Q1)
    assert NationalExport.objects.filter(period="2025-Q1").count() == 2


def test_a_failed_sending_is_kept_and_retried_through_the_same_interface(world, refreshed, exports_dir):
    with override_settings(OVERSIGHT_EXPORT_TRANSPORT="tests.oversight.test_national_export.BrokenTransport"):
        export, created = services.export_quarter(actor=None, organization_id=world.org_b.pk, period="2025-Q1",
                                                  now=AFTER_Q1)
    assert created and export.sent_at is None and "unreachable" in export.last_error
    services.export_due(today=dt.date(YEAR, 4, 15), now=AFTER_Q1)
    export.refresh_from_db()
    assert export.sent_at is not None and export.attempts == 2 and export.last_error == ""
    assert NationalExport.objects.filter(organization=world.org_b).count() == 1


def test_a_quarter_is_exported_only_after_it_ends(world, refreshed, exports_dir):
    with pytest.raises(Invalid):
        services.export_quarter(actor=world.bureau, organization_id=world.org_a.pk, period="2025-Q2",
                                now=AFTER_Q1)
    with pytest.raises(Invalid):
        services.export_quarter(actor=world.bureau, organization_id=world.org_a.pk, period="2025-Q5", now=AFTER_Q1)


def test_who_may_read_and_run_exports(world, refreshed, exports_dir, api_as):
    export, _created = services.export_quarter(actor=world.bureau, organization_id=world.org_a.pk,
                                               period="2025-Q1", now=AFTER_Q1)
    finance = api_as(world.finance)
    assert [row["id"] for row in finance.get("/oversight/exports").json()] == [export.pk]
    assert finance.get(f"/oversight/exports/{export.pk}").json()["payload"]["period"] == "2025-Q1"
    assert finance.post("/oversight/exports", {"organization_id": world.org_a.pk, "period": "2025-Q1"}
                        ).status_code == 403
    other = api_as(world.other_finance)
    assert other.get("/oversight/exports").json() == []
    assert other.get(f"/oversight/exports/{export.pk}").status_code == 404
    assert api_as(world.researcher).post("/oversight/exports", {"organization_id": world.org_a.pk,
                                                                "period": "2025-Q1"}).status_code == 404
    page = Client()
    page.force_login(world.finance)
    download = page.get(f"/oversight/exports/{export.pk}.json")
    assert json.loads(download.content)["period"] == "2025-Q1"
    page.force_login(world.other_finance)
    assert page.get(f"/oversight/exports/{export.pk}.json").status_code == 404


def test_the_bureau_runs_a_quarter_from_the_page(world, refreshed, exports_dir):
    client = Client()
    client.force_login(world.bureau)
    response = client.post("/oversight/exports/run", {"period": "2025-Q1"})
    assert response.status_code == 302
    assert NationalExport.objects.filter(period="2025-Q1").count() == 2
    page = client.get("/oversight/exports/").content.decode()
    assert "2025-Q1" in page and "甲大学" in page
    assert Decimal(NationalExport.objects.get(organization=world.org_b).payload["annual_report"]["effective_hours"]) \
        == Decimal("3.00")
