"""The catalog pages: the instrument page for everyone, the lab manager's pages for the lab's managers only."""

import datetime as dt

import pytest
from django.test import Client

from catalog import services
from catalog.models import Downtime, Instrument, ListingChangeRequest, Qualification, TrainingRequest
from instrumentshare.accounts.models import User
from instrumentshare.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def logged_in(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


MANAGE_PAGES = ["manage", "edit", "policy", "hours", "downtime", "qualifications"]
MANAGE_POSTS = ["manage/publish/", "manage/unpublish/", "manage/share-mode/", "manage/request/", "manage/photo/",
                "edit/", "policy/", "hours/", "hours/exception/", "downtime/", "qualifications/"]


def test_the_instrument_page_shows_record_rules_fees_and_hours_in_its_own_zone(world, make_instrument):
    instrument = make_instrument(name_zh="柏林电镜", time_zone="Europe/Berlin", fee_standard="校外 400 元/小时")
    services.update_policy(actor=world.manager, instrument_id=instrument.pk, qualification_required=True,
                           approval="external")
    # 08:00 UTC on a winter day is 09:00 in Berlin; in summer it would be 10:00
    start = dt.datetime(2030, 1, 15, 8, tzinfo=dt.UTC)
    services.add_downtime(actor=world.manager, instrument_id=instrument.pk, kind="planned", reason="年度保养",
                          start=start, end=start + dt.timedelta(hours=4))
    html = Client().get(f"/instruments/{instrument.pk}/").content.decode()
    assert "柏林电镜" in html and "Europe/Berlin" in html and "校外 400 元/小时" in html
    assert "08:30-17:30" in html
    assert "2030-01-15 09:00 – 2030-01-15 13:00" in html
    assert "Hitachi High-Tech" in html and "010102" in html


def test_a_draft_page_is_404_to_outsiders(world, make_instrument):
    draft = make_instrument(publish=False)
    assert Client().get(f"/instruments/{draft.pk}/").status_code == 404
    assert logged_in("other_manager").get(f"/instruments/{draft.pk}/").status_code == 404
    assert logged_in("researcher").get(f"/instruments/{draft.pk}/").status_code == 200


@pytest.mark.parametrize("publish,status", [(True, 403), (False, 404)])
def test_another_labs_manager_can_neither_open_nor_post_the_manage_pages(world, make_instrument, publish, status):
    instrument = make_instrument(publish=publish)
    services.add_downtime(actor=world.manager, instrument_id=instrument.pk,
                          start=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), end=dt.datetime(2030, 1, 2, tzinfo=dt.UTC),
                          kind="planned", reason="x")
    qualification = services.grant_qualification(actor=world.manager, instrument_id=instrument.pk,
                                                 user=world.researcher)
    training = TrainingRequest.objects.create(instrument=instrument, user=world.company_user)
    downtime = Downtime.objects.get(instrument=instrument)
    client = logged_in("other_manager")
    events = AuditEvent.objects.count()
    base = f"/instruments/{instrument.pk}/"
    for page in MANAGE_PAGES:
        assert client.get(f"{base}{page}/").status_code == status, page
    posts = [*MANAGE_POSTS, f"downtime/{downtime.pk}/cancel/", f"qualifications/{qualification.pk}/revoke/",
             f"qualifications/{training.pk}/decline/"]
    for path in posts:
        response = client.post(f"{base}{path}", {"name_zh": "x", "share_mode": "not_shared", "day0": "09:00-10:00"})
        assert response.status_code == status, path
    assert AuditEvent.objects.count() == events
    assert Instrument.objects.get(pk=instrument.pk).name_zh != "x"


def test_the_lab_manager_edits_the_record_and_sees_problems_on_the_form(world, make_instrument):
    instrument = make_instrument(name_zh="旧名")
    client = logged_in("manager")
    form = client.get(f"/instruments/{instrument.pk}/edit/").context["form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items() if name in form.fields}
    data.update(name_zh="新名", category="010101", purchase_date="2024-03-04", acceptance_date="2024-03-08")
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(f"/instruments/{instrument.pk}/edit/", data)
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    instrument.refresh_from_db()
    assert (instrument.name_zh, instrument.category_id) == ("新名", "010101")
    event = AuditEvent.objects.filter(action="instrument.updated").last()
    assert event.after["name_zh"] == "新名"
    data.update(time_zone="Mars/Olympus")
    response = client.post(f"/instruments/{instrument.pk}/edit/", data)
    assert response.status_code == 200 and "time_zone" in response.context["form"].errors


def test_a_lab_manager_adds_an_instrument_as_a_draft(world):
    client = logged_in("manager")
    response = client.post("/instruments/new/", {
        "lab": world.lab_a.pk, "share_mode": "external", "name_zh": "新电镜", "asset_number": "NEW-1",
        "category": "010102", "original_value": "250000", "affiliation": "other", "source": "purchased",
        "purpose": "general", "status": "normal", "time_zone": "Asia/Shanghai", "warmup_minutes": 0,
        "postprocessing_minutes": 0, "funded_local": "on",
    })
    assert response.status_code == 302
    instrument = Instrument.objects.get(asset_number="NEW-1")
    assert instrument.listing_state == "draft" and instrument.lab == world.lab_a
    assert instrument.opening_rules.count() == 5
    assert logged_in("researcher").get("/instruments/new/").status_code == 403


def test_hours_downtime_and_qualifications_through_the_pages(world, make_instrument):
    instrument = make_instrument(time_zone="Asia/Shanghai")
    client = logged_in("manager")
    base = f"/instruments/{instrument.pk}/"
    days = {f"day{d}": "" for d in range(7)}
    bad = client.post(f"{base}hours/", {**days, "day0": "09:00-08:00"})
    assert bad.status_code == 200 and bad.context["form"].errors
    assert client.post(f"{base}hours/", {**days, "day0": "08:30-12:00, 13:30-17:30",
                                         "day5": "00:00-24:00"}).status_code == 302
    assert [str(r) for r in instrument.opening_rules.all()] == ["0 08:30-12:00", "0 13:30-17:30", "5 00:00-24:00"]
    client.post(f"{base}hours/exception/", {"date": "2030-10-01", "closed": "on", "reason": "国庆节"})
    assert instrument.opening_exceptions.get().reason == "国庆节"
    assert client.post(f"{base}downtime/", {"start": "2030-03-02T09:00", "end": "2030-03-02T12:00",
                                            "kind": "planned", "reason": "保养"}).status_code == 302
    downtime = instrument.downtimes.get()
    assert downtime.start == dt.datetime(2030, 3, 2, 1, tzinfo=dt.UTC)  # 09:00 in Shanghai
    client.post(f"{base}downtime/{downtime.pk}/cancel/")
    assert not instrument.downtimes.exists()
    assert client.post(f"{base}qualifications/", {"username": "other_researcher", "expires": "2031-01-01",
                                                  "note": "培训合格"}).status_code == 302
    qualification = Qualification.objects.get(instrument=instrument)
    assert qualification.user == world.other_researcher and qualification.is_valid()
    client.post(f"{base}qualifications/{qualification.pk}/revoke/")  # no reason: refused with a message
    qualification.refresh_from_db()
    assert qualification.revoked_at is None
    client.post(f"{base}qualifications/{qualification.pk}/revoke/", {"reason": "left the group"})
    qualification.refresh_from_db()
    assert qualification.revoked_at is not None


def test_users_ask_for_training_from_the_instrument_page(world, make_instrument):
    instrument = make_instrument()
    services.update_policy(actor=world.manager, instrument_id=instrument.pk, qualification_required=True)
    client = logged_in("company_user")
    page = client.get(f"/instruments/{instrument.pk}/", headers={"Accept-Language": "en"})
    assert "Ask for training" in page.content.decode()
    assert client.post(f"/instruments/{instrument.pk}/training/", {"message": "请安排培训"}).status_code == 302
    request = TrainingRequest.objects.get(instrument=instrument)
    assert request.user == world.company_user and request.message == "请安排培训"
    assert "请安排培训" in logged_in("manager").get(f"/instruments/{instrument.pk}/qualifications/").content.decode()


def test_an_exemption_is_requested_by_the_manager_and_decided_by_the_bureau(world, make_instrument):
    instrument = make_instrument(original_value="800000")
    manager = logged_in("manager")
    response = manager.post(f"/instruments/{instrument.pk}/manage/unpublish/", follow=True)
    assert "approval" in response.content.decode() or "exemption" in response.content.decode()
    assert Instrument.objects.get(pk=instrument.pk).is_published
    manager.post(f"/instruments/{instrument.pk}/manage/request/",
                 {"kind": "unpublish", "justification": "仪器严重老化，厂家停止支持，申请下线处置。" * 2})
    change = ListingChangeRequest.objects.get(instrument=instrument)
    assert logged_in("manager").post(f"/instruments/requests/{change.pk}/decide/",
                                     {"decision": "approve"}).status_code == 403
    bureau = logged_in("bureau")
    assert change.justification[:10] in bureau.get("/instruments/requests/").content.decode()
    assert bureau.post(f"/instruments/requests/{change.pk}/decide/",
                       {"decision": "approve", "note": "同意"}).status_code == 302
    instrument.refresh_from_db()
    assert instrument.listing_state == "draft"
    assert ListingChangeRequest.objects.get(pk=change.pk).state == "approved"


def test_my_instruments_lists_each_managed_lab_with_its_exports(world, make_instrument):
    make_instrument(asset_number="MINE-1")
    html = logged_in("manager").get("/instruments/mine/").content.decode()
    assert "MINE-1" in html and "/instruments/export/lab-a.csv" in html
    assert logged_in("researcher").get("/instruments/mine/").status_code == 403
    assert logged_in("other_manager").get("/instruments/export/lab-a.csv").status_code == 403


def test_the_admin_shows_the_catalog_read_only(world, make_instrument):

    instrument = make_instrument()
    User.objects.create_superuser("root", "root@example.org", "unused-password")
    client = logged_in("root")
    assert client.get("/admin/catalog/instrument/").status_code == 200
    assert client.get(f"/admin/catalog/instrument/{instrument.pk}/change/").status_code == 200
    assert client.get("/admin/catalog/instrument/add/").status_code == 403
    assert client.get("/admin/catalog/category/?level=1").status_code == 200
