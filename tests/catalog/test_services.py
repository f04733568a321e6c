"""The catalog's services and helpers, below the HTTP surface."""

import datetime as dt
from decimal import Decimal

import pytest

from catalog import services, spreadsheet
from catalog.hours import parse_day, parse_time
from catalog.models import Instrument, TrainingRequest
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core import spreadsheets
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from tests.catalog.conftest import record_fields


@pytest.mark.django_db
def test_creating_an_instrument_takes_the_labs_organization_and_is_audited(world):
    instrument = services.create_instrument(actor=world.manager, lab=world.lab_a, **record_fields(district=""))
    assert instrument.organization == world.org_a and instrument.listing_state == "draft"
    assert instrument.district == world.lab_a.district
    event = AuditEvent.objects.get(action="instrument.created")
    assert event.actor_id == world.manager.pk and event.after["lab_id"] == world.lab_a.pk


@pytest.mark.django_db
def test_the_record_rules(world, make_instrument):
    with pytest.raises(Forbidden):
        services.create_instrument(actor=world.other_manager, lab=world.lab_a, **record_fields())
    with pytest.raises(Invalid, match="read-only"):
        services.create_instrument(actor=world.manager, lab=world.lab_a, listing_state="published", **record_fields())
    with pytest.raises(Invalid, match="sub-categories"):
        services.create_instrument(actor=world.manager, lab=world.lab_a, **record_fields(category_id="010000"))
    with pytest.raises(Forbidden, match="exemption"):
        services.create_instrument(actor=world.manager, lab=world.lab_a, share_mode="not_shared",
                                   **record_fields(original_value=Decimal("200000")))
    small = services.create_instrument(actor=world.manager, lab=world.lab_a, share_mode="not_shared",
                                       **record_fields(original_value=Decimal("100")))
    assert small.share_mode == "not_shared"
    existing = make_instrument(asset_number="A-1")
    with pytest.raises(Conflict):
        services.create_instrument(actor=world.manager, lab=world.lab_a, **record_fields(asset_number="A-1"))
    # the same asset number in another organization is another asset
    services.create_instrument(actor=world.other_manager, lab=world.lab_b, **record_fields(asset_number="A-1"))
    with pytest.raises(Invalid):
        services.update_instrument(actor=world.manager, instrument_id=existing.pk, lab_id=world.lab_b.pk)


@pytest.mark.django_db
def test_a_write_to_an_unseen_instrument_is_not_found_and_to_a_seen_one_forbidden(world, make_instrument):
    draft, published = make_instrument(publish=False), make_instrument()
    with pytest.raises(NotFound):
        services.update_instrument(actor=world.other_manager, instrument_id=draft.pk, name_zh="x")
    with pytest.raises(Forbidden):
        services.update_instrument(actor=world.other_manager, instrument_id=published.pk, name_zh="x")
    with pytest.raises(NotFound):
        services.update_instrument(actor=world.manager, instrument_id=10**9, name_zh="x")


@pytest.mark.django_db
def test_downtime_cancel_and_training_decline_are_audited(world, make_instrument):
    instrument = make_instrument()
    downtime = services.add_downtime(actor=world.manager, instrument_id=instrument.pk,
                                     start=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                                     end=dt.datetime(2030, 1, 2, tzinfo=dt.UTC), kind="unplanned", reason="故障")
    with pytest.raises(Forbidden):
        services.cancel_downtime(actor=world.other_manager, instrument_id=instrument.pk, downtime_id=downtime.pk)
    services.cancel_downtime(actor=world.manager, instrument_id=instrument.pk, downtime_id=downtime.pk)
    assert not instrument.downtimes.exists()
    assert AuditEvent.objects.filter(action="instrument.downtime_cancelled").get().before["reason"] == "故障"
    training = services.request_training(actor=world.company_user, instrument_id=instrument.pk)
    assert services.request_training(actor=world.company_user, instrument_id=instrument.pk) == training
    services.decline_training_request(actor=world.manager, training_request_id=training.pk, reason="名额已满")
    assert TrainingRequest.objects.get(pk=training.pk).state == "declined"
    assert AuditEvent.objects.filter(action="qualification.training_declined").get().reason == "名额已满"


@pytest.mark.django_db
def test_a_photo_replaces_the_old_one_after_commit(world, make_instrument, settings, tmp_path,
                                                   django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path
    instrument = make_instrument()
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 32
    with django_capture_on_commit_callbacks(execute=True):
        first = services.set_photo(actor=world.manager, instrument_id=instrument.pk, content=jpeg).photo.name
    with django_capture_on_commit_callbacks(execute=True):
        second = services.set_photo(actor=world.manager, instrument_id=instrument.pk, content=jpeg).photo.name
    assert first != second and second.endswith(".jpg")
    assert not (tmp_path / first).exists() and (tmp_path / second).exists()
    with pytest.raises(Invalid):
        services.set_photo(actor=world.manager, instrument_id=instrument.pk, content=b"GIF89a" + b"\0" * 10)
    with pytest.raises(Invalid):
        services.set_photo(actor=world.manager, instrument_id=instrument.pk, content=jpeg + b"\0" * (5 * 2**20))


@pytest.mark.django_db
def test_an_import_by_someone_else_is_refused_before_anything_is_read(world):
    with pytest.raises(Forbidden):
        services.import_instruments(actor=world.other_manager, lab=world.lab_a, rows=[], dry_run=True)
    assert Instrument.objects.count() == 0


# --- helpers --------------------------------------------------------------------------------------


def test_opening_hours_as_people_write_them():
    assert parse_day("08:30-12:00, 13:30－17:30".replace("－", "-")) == [(510, 720), (810, 1050)]
    assert parse_day("13:30～17:30，08:30-12:00") == [(510, 720), (810, 1050)]
    assert parse_day("") == []
    assert parse_time("24:00") == 1440
    for bad in ("25:00", "8点", "12:00-08:00", "09:00"):
        with pytest.raises(Invalid):
            parse_day(bad)


def test_formula_like_cells_are_quoted_and_others_left_alone():
    assert spreadsheets.safe_cell("=1+2") == "'=1+2"
    assert spreadsheets.safe_cell("+86 532") == "'+86 532"
    assert spreadsheets.safe_cell("-5") == "'-5"
    assert spreadsheets.safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheets.safe_cell("\t=1") == "'\t=1"
    assert spreadsheets.safe_cell("电镜") == "电镜"
    assert spreadsheets.safe_cell(Decimal("-5")) == Decimal("-5")
    assert spreadsheets.safe_cell(None) == ""


@pytest.mark.parametrize("text,expected", [
    ("中央财政", {"funded_central"}),
    ("中央财政;地方财政", {"funded_central", "funded_local"}),
    ("地方财政、自有资金", {"funded_local", "funded_own"}),
    ("central, own", {"funded_central", "funded_own"}),
    ("自筹", {"funded_own"}),
    ("", set()),
])
def test_funding_cells(text, expected):
    parsed = spreadsheet._parse_funding(text)
    assert {name for name, on in parsed.items() if on} == expected


def test_choice_cells_take_chinese_english_or_codes():
    assert spreadsheet._parse_choice("share_mode", "对外共享") == "external"
    assert spreadsheet._parse_choice("share_mode", "Internal only") == "internal"
    assert spreadsheet._parse_choice("share_mode", "not_shared") == "not_shared"
    assert spreadsheet._parse_choice("status", "") == "normal"
    with pytest.raises(ValueError, match="对外共享"):
        spreadsheet._parse_choice("share_mode", "maybe")


def test_date_cells():
    assert spreadsheet._parse_date("2019-06-18") == dt.date(2019, 6, 18)
    assert spreadsheet._parse_date("2019/6/8") == dt.date(2019, 6, 8)
    assert spreadsheet._parse_date("2019年6月18日") == dt.date(2019, 6, 18)
    assert spreadsheet._parse_date("20190618") == dt.date(2019, 6, 18)
    assert spreadsheet._parse_date(dt.datetime(2019, 6, 18, 0, 0)) == dt.date(2019, 6, 18)
    with pytest.raises(ValueError):
        spreadsheet._parse_date("18/06/2019")
