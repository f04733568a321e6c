"""The sharing compliance report: thresholds, funding, working-day deadlines, exemptions, scope, exports."""

import csv
import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.test import Client

from catalog import compliance, services
from catalog.compliance import add_working_days, build_report, is_working_day
from catalog.models import Instrument
from instrumentshare.accounts.models import User
from instrumentshare.audit.services import verify

TODAY = dt.date(2026, 11, 20)


def flags_of(instrument, today=TODAY) -> set[str]:
    report = build_report(today=today)
    return next((set(row.flags) for row in report.rows if row.instrument.pk == instrument.pk), set())


# --- working days ------------------------------------------------------------------------------


def test_national_day_2026_and_its_make_up_working_days_are_counted():
    # 2026: Mid-Autumn 25–27 September and National Day 1–7 October are off; Sunday 20 September and
    # Saturday 10 October are make-up working days.
    assert is_working_day(dt.date(2026, 10, 1)) == (False, True)
    assert is_working_day(dt.date(2026, 10, 10)) == (True, True)
    assert is_working_day(dt.date(2026, 9, 20)) == (True, True)
    # 20 working days after Friday 18 September: Monday to Friday alone would give 16 October.
    assert add_working_days(dt.date(2026, 9, 18), 20) == (dt.date(2026, 10, 22), False)


def test_years_the_calendar_does_not_know_fall_back_to_monday_to_friday_and_say_so():
    due, estimated = add_working_days(dt.date(2026, 12, 21), 20)
    assert estimated
    # 8 known working days are left in 2026; then Monday to Friday, even New Year's Day (not known yet)
    assert due == dt.date(2027, 1, 18)
    assert is_working_day(dt.date(2030, 1, 1)) == (True, False)


# --- which instruments are mandatory -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("value,funding,mandatory", [
    ("199999.99", {"funded_local": True}, False),
    ("200000.00", {"funded_local": True}, True),
    ("200000.00", {"funded_central": True}, True),
    ("5000000", {"funded_central": False}, False),  # own funds only
    ("300000", {"funded_central": False, "funded_own": True, "funded_local": True}, True),  # mixed: partly public
    ("300000", {"funded_central": False, "funded_own": True, "funded_other": True}, False),
])
def test_threshold_and_mixed_funding(world, make_instrument, value, funding, mandatory):
    instrument = make_instrument(publish=False, original_value=value, **{"funded_central": False, **funding})
    assert services.is_mandatory(instrument) is mandatory
    assert ("unlisted" in flags_of(instrument)) is mandatory


@pytest.mark.django_db
def test_the_threshold_comes_from_settings(world, make_instrument, settings):
    instrument = make_instrument(publish=False, original_value="250000")
    settings.MANDATORY_LISTING_VALUE = 300000
    assert flags_of(instrument) == set()


# --- the flags ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_listing_deadline_across_national_day(world, make_instrument):
    on_time = make_instrument(purchase_date=dt.date(2026, 9, 18), acceptance_date=dt.date(2026, 9, 28),
                              published_on=dt.date(2026, 10, 22))
    late = make_instrument(purchase_date=dt.date(2026, 9, 18), acceptance_date=dt.date(2026, 9, 28),
                           published_on=dt.date(2026, 10, 23))
    assert flags_of(on_time) == set()
    assert flags_of(late) == {"overdue_city"}


@pytest.mark.django_db
def test_an_unpublished_instrument_is_overdue_only_once_its_deadline_has_passed(world, make_instrument):
    draft = make_instrument(publish=False, purchase_date=dt.date(2026, 9, 18), acceptance_date=dt.date(2026, 9, 21))
    assert flags_of(draft, today=dt.date(2026, 10, 22)) == {"unlisted"}
    assert flags_of(draft, today=dt.date(2026, 10, 23)) == {"unlisted", "overdue_city"}


@pytest.mark.django_db
def test_the_national_rule_applies_from_its_own_value_and_counts_from_acceptance(world, make_instrument):
    # Bought and accepted on 3 March 2025, listed on 30 April: past both deadlines, but the national
    # rule only binds from its own, higher value.
    small = make_instrument(original_value="400000", purchase_date=dt.date(2025, 3, 3),
                            acceptance_date=dt.date(2025, 3, 3), published_on=dt.date(2025, 4, 30))
    large = make_instrument(original_value="500000", purchase_date=dt.date(2025, 3, 3),
                            acceptance_date=dt.date(2025, 3, 3), published_on=dt.date(2025, 4, 30))
    assert flags_of(small) == {"overdue_city"}
    assert flags_of(large) == {"overdue_city", "overdue_national"}
    report = build_report(today=TODAY)
    row = next(r for r in report.rows if r.instrument.pk == large.pk)
    assert row.city_due == dt.date(2025, 3, 31)
    assert row.national_due == dt.date(2025, 4, 15)  # Qingming 4 April 2025 is a holiday


@pytest.mark.django_db
def test_not_shared_externally_and_missing_fields(world, make_instrument):
    internal = make_instrument(share_mode="internal")
    incomplete = make_instrument(specifications="", contact_phone="", contact_email="")
    assert flags_of(internal) == {"not_shared"}
    assert flags_of(incomplete) == {"missing_fields"}
    row = next(r for r in build_report(today=TODAY).rows if r.instrument.pk == incomplete.pk)
    assert row.missing == ["specifications", "contact"]


@pytest.mark.django_db
def test_an_approved_exemption_removes_the_flags_it_covers(world, make_instrument):
    unlisted = make_instrument(share_mode="internal", purchase_date=dt.date(2025, 1, 6))
    services.request_listing_change(actor=world.manager, instrument_id=unlisted.pk, kind="not_shared",
                                    justification="承担涉密项目，项目执行期间申请暂不共享。" * 2)
    assert flags_of(unlisted) == {"not_shared"}  # pending: still flagged
    change = unlisted.listing_requests.get()
    services.decide_listing_change(actor=world.bureau, request_id=change.pk, approve=True, note="同意")
    assert flags_of(Instrument.objects.get(pk=unlisted.pk)) == set()


@pytest.mark.django_db
def test_an_approved_unpublish_exemption_covers_listing_and_its_deadlines(world, make_instrument):
    worn_out = make_instrument(purchase_date=dt.date(2010, 5, 4), acceptance_date=dt.date(2010, 5, 10),
                               published_on=dt.date(2010, 5, 12), status="awaiting_disposal")
    change = services.request_listing_change(actor=world.manager, instrument_id=worn_out.pk, kind="unpublish",
                                             justification="设备老化待报废，厂家已停止维修支持。" * 2)
    services.decide_listing_change(actor=world.bureau, request_id=change.pk, approve=True)
    worn_out.refresh_from_db()
    assert worn_out.listing_state == "draft"
    assert flags_of(worn_out) == set()


@pytest.mark.django_db
def test_a_rejected_exemption_changes_nothing(world, make_instrument):
    instrument = make_instrument(publish=False, purchase_date=dt.date(2025, 1, 6), acceptance_date=None)
    change = services.request_listing_change(actor=world.manager, instrument_id=instrument.pk, kind="unpublish",
                                             justification="理由不充分的申请，仅用于测试驳回。" * 2)
    services.decide_listing_change(actor=world.bureau, request_id=change.pk, approve=False, note="不同意")
    assert {"unlisted", "overdue_city"} <= flags_of(instrument)


# --- the demo --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_demo_flags_exactly_its_deliberately_non_compliant_instruments():
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # twice: nothing doubles
    assert Instrument.objects.count() == 150
    assert verify() is None
    report = build_report(today=TODAY)
    assert {row.instrument.asset_number: set(row.flags) for row in report.rows} == {
        "QUST-PA-2025-004": {"unlisted", "overdue_city", "overdue_national"},  # left as a draft
        "SDUST-MC-2022-017": {"not_shared"},  # internal only
        "QIBEBT-SC-2024-007": {"overdue_city", "overdue_national"},  # listed half a year late
        "FIO-RV-2020-011": {"missing_fields"},  # incomplete record
    }
    exempt = Instrument.objects.get(asset_number="IOCAS-CF-2009-007")
    assert exempt.listing_state == "draft" and exempt.listing_requests.get().state == "approved"
    pending = Instrument.objects.get(asset_number="LSL-HPC-2023-002")
    assert pending.listing_requests.get().state == "pending"
    # below the threshold or own funds: drafts and in-house use break no rule
    assert Instrument.objects.filter(listing_state="draft").count() == 4
    assert Instrument.objects.exclude(share_mode="external").count() == 4
    assert Instrument.objects.filter(listing_state="published").count() == 146


# --- who sees what -----------------------------------------------------------------------------


@pytest.fixture
def two_organizations(world, make_instrument):
    return make_instrument(publish=False), make_instrument(world.lab_b, publish=False)


@pytest.mark.django_db
def test_the_api_report_is_scoped_to_the_callers_organizations(world, api_as, two_organizations):
    mine, theirs = two_organizations
    assert api_as(None).get("/compliance").status_code == 401
    assert api_as(world.researcher).get("/compliance").status_code == 403
    assert api_as(world.company_user).get("/compliance").status_code == 403

    def ids(user, **params):
        response = api_as(user).get("/compliance", params or None)
        assert response.status_code == 200, response.content
        return {row["instrument_id"] for row in response.json()["rows"]}

    assert ids(world.bureau) == {mine.pk, theirs.pk}
    assert ids(world.bureau, organization=world.org_b.pk) == {theirs.pk}
    assert ids(world.manager) == {mine.pk}
    assert ids(world.finance) == {mine.pk}
    assert ids(world.other_finance) == {theirs.pk}
    assert api_as(world.manager).get("/compliance", {"organization": world.org_b.pk}).status_code == 403
    body = api_as(world.bureau).get("/compliance").json()
    assert body["mandatory_listing_value"] == "200000"
    assert {s["organization_id"]: s["flagged"] for s in body["organizations"]} == {world.org_a.pk: 1,
                                                                                 world.org_b.pk: 1}


@pytest.mark.django_db
def test_the_page_and_its_exports_follow_the_same_scope(world, two_organizations):
    mine, theirs = two_organizations
    anonymous = Client().get("/instruments/compliance/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    client = Client()
    client.force_login(User.objects.get(username="researcher"))
    assert client.get("/instruments/compliance/").status_code == 403
    client.force_login(User.objects.get(username="manager"))
    html = client.get("/instruments/compliance/").content.decode()
    assert mine.asset_number in html and theirs.asset_number not in html
    assert client.get(f"/instruments/compliance/?organization={world.org_b.pk}").status_code == 403
    client.force_login(User.objects.get(username="bureau"))
    html = client.get("/instruments/compliance/").content.decode()
    assert mine.asset_number in html and theirs.asset_number in html


@pytest.mark.django_db
def test_csv_export_has_a_bom_and_defuses_formulas(world, make_instrument):
    make_instrument(publish=False, name_zh='=HYPERLINK("http://evil.example","点我")', asset_number="@SUM(1)")
    client = Client()
    client.force_login(User.objects.get(username="bureau"))
    response = client.get("/instruments/compliance/export.csv")
    assert response.status_code == 200
    content = response.content
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[1][2] == "'@SUM(1)"
    assert rows[1][3] == "'=HYPERLINK(\"http://evil.example\",\"点我\")"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


@pytest.mark.django_db
def test_xlsx_export_types_formula_like_text_as_text(world, make_instrument):
    from openpyxl import load_workbook

    make_instrument(publish=False, name_zh="=1+2")
    client = Client()
    client.force_login(User.objects.get(username="bureau"))
    response = client.get("/instruments/compliance/export.xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    cell = sheet.cell(row=2, column=4)
    assert cell.value == "=1+2" and cell.data_type == "s"   # typed as text: shown, never run


@pytest.mark.django_db
def test_the_management_command_writes_table_csv_and_xlsx(world, make_instrument, tmp_path):
    make_instrument(publish=False, asset_number="CMD-1")
    out = io.StringIO()
    call_command("compliance_report", "--as-of", "2026-11-20", stdout=out)
    assert "CMD-1" in out.getvalue() and "1 instruments with problems" in out.getvalue()
    target = tmp_path / "report.csv"
    call_command("compliance_report", "--format", "csv", "--output", str(target), "--language", "en",
                 stderr=io.StringIO())
    text = target.read_bytes().decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Organization,Lab,Asset number")
    assert "CMD-1" in text
    xlsx = tmp_path / "report.xlsx"
    call_command("compliance_report", "--format", "xlsx", "--output", str(xlsx), stderr=io.StringIO())
    assert xlsx.read_bytes()[:2] == b"PK"


def test_every_flag_has_a_label():
    assert set(compliance.FLAG_LABELS) == {"unlisted", "not_shared", "overdue_city", "overdue_national",
                                           "missing_fields"}
