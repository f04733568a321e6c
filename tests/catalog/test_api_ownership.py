"""Who may change which instrument, through the API: every write route, for the owner and for others."""

import io

import pytest

from catalog import services
from catalog.models import Downtime, Instrument, Qualification, TrainingRequest
from instrumentshare.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab_a_instrument(world, make_instrument):
    """A published lab-A instrument (below the threshold, so even unpublishing is the manager's call)
    with one of everything a write route can point at."""
    instrument = make_instrument(original_value="150000")
    services.add_downtime(actor=world.manager, instrument_id=instrument.pk,
                          start=_aware("2030-01-07T09:00"), end=_aware("2030-01-07T12:00"), kind="planned",
                          reason="service")
    services.grant_qualification(actor=world.manager, instrument_id=instrument.pk, user=world.researcher)
    services.request_training(actor=world.company_user, instrument_id=instrument.pk, message="please")
    return instrument


def _aware(text):
    import datetime as dt

    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _write_routes(instrument):
    downtime = Downtime.objects.get(instrument=instrument)
    qualification = Qualification.objects.get(instrument=instrument)
    training = TrainingRequest.objects.get(instrument=instrument)
    i = instrument.pk
    return [
        ("patch", f"/instruments/{i}", {"name_zh": "改名"}),
        ("post", f"/instruments/{i}/publish", None),
        ("post", f"/instruments/{i}/unpublish", None),
        ("post", f"/instruments/{i}/share-mode", {"share_mode": "internal"}),
        ("patch", f"/instruments/{i}/policy", {"max_minutes": 60}),
        ("put", f"/instruments/{i}/opening-hours", {"rules": [{"weekday": 0, "opens": "09:00", "closes": "10:00"}]}),
        ("post", f"/instruments/{i}/opening-exceptions", {"date": "2030-01-01", "closed": True, "reason": "元旦"}),
        ("post", f"/instruments/{i}/downtime", {"start": "2030-02-01T09:00", "end": "2030-02-01T10:00",
                                                "kind": "planned", "reason": "x"}),
        ("delete", f"/instruments/{i}/downtime/{downtime.pk}", None),
        ("post", f"/instruments/{i}/listing-requests", {"kind": "unpublish", "justification": "x" * 30}),
        ("get", f"/instruments/{i}/qualifications", None),
        ("post", f"/instruments/{i}/qualifications", {"username": "other_researcher"}),
        ("post", f"/qualifications/{qualification.pk}/revoke", {"reason": "left the group"}),  # a reason is required
        ("get", f"/instruments/{i}/training-requests", None),
        ("post", f"/training-requests/{training.pk}/decline", {"reason": ""}),
    ]


def _snapshot(instrument):
    instrument = Instrument.objects.get(pk=instrument.pk)
    return (instrument.name_zh, instrument.listing_state, instrument.share_mode, instrument.opening_rules.count(),
            instrument.downtimes.count(), instrument.policy.max_minutes, AuditEvent.objects.count())


def test_a_manager_of_another_lab_gets_403_on_every_write_route_of_a_published_instrument(
        world, api_as, lab_a_instrument):
    client = api_as(world.other_manager)
    before = _snapshot(lab_a_instrument)
    for method, path, body in _write_routes(lab_a_instrument):
        response = getattr(client, method)(path, body)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["code"] in {"forbidden", "approval_required"}
    assert _snapshot(lab_a_instrument) == before


def test_a_manager_of_another_lab_gets_404_on_every_route_of_a_draft_they_cannot_see(world, api_as, make_instrument):
    draft = make_instrument(publish=False)
    services.add_downtime(actor=world.manager, instrument_id=draft.pk, start=_aware("2030-01-07T09:00"),
                          end=_aware("2030-01-07T12:00"), kind="planned", reason="service")
    services.grant_qualification(actor=world.manager, instrument_id=draft.pk, user=world.researcher)
    TrainingRequest.objects.create(instrument=draft, user=world.other_researcher)
    client = api_as(world.other_manager)
    before = _snapshot(draft)
    for method, path, body in _write_routes(draft):
        response = getattr(client, method)(path, body)
        assert response.status_code == 404, (method, path, response.content)
    assert client.get(f"/instruments/{draft.pk}").status_code == 404
    assert _snapshot(draft) == before


def test_a_researcher_of_the_lab_may_see_but_not_change(world, api_as, lab_a_instrument):
    client = api_as(world.researcher)
    for method, path, body in _write_routes(lab_a_instrument):
        assert getattr(client, method)(path, body).status_code == 403, (method, path)


def test_anonymous_writes_are_401(world, api_as, lab_a_instrument):
    client = api_as(None)
    for method, path, body in _write_routes(lab_a_instrument):
        if method == "get":
            continue
        assert getattr(client, method)(path, body).status_code == 401, (method, path)


def test_a_read_only_token_cannot_write(world, api_as, lab_a_instrument):
    response = api_as(world.manager, scope="read").patch(f"/instruments/{lab_a_instrument.pk}", {"name_zh": "x"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_the_owning_lab_manager_may_use_every_write_route(world, api_as, lab_a_instrument):
    client = api_as(world.manager)
    for method, path, body in _write_routes(lab_a_instrument):
        response = getattr(client, method)(path, body)
        assert response.status_code in {200, 201, 204}, (method, path, response.content)
    lab_a_instrument.refresh_from_db()
    assert lab_a_instrument.name_zh == "改名"
    assert lab_a_instrument.share_mode == "internal"
    assert [str(rule) for rule in lab_a_instrument.opening_rules.all()] == ["0 09:00-10:00"]


def test_creating_needs_the_named_lab_to_be_managed(world, api_as):
    body = {"lab": "lab-a", "name_zh": "新仪器", "asset_number": "N-1", "category": "010102",
            "original_value": "250000.00", "funded_local": True}
    assert api_as(world.other_manager).post("/instruments", body).status_code == 403
    assert api_as(world.researcher).post("/instruments", body).status_code == 403
    assert api_as(world.manager).post("/instruments", {**body, "lab": "no-such-lab"}).status_code == 404
    response = api_as(world.manager).post("/instruments", {
        **body, "policy": {"qualification_required": True},
        "opening_hours": [{"weekday": 0, "opens": "08:30", "closes": "17:30"}]})
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["listing_state"] == "draft" and created["lab"]["code"] == "lab-a"
    assert created["policy"]["qualification_required"] is True
    assert created["opening_hours"] == [{"weekday": 0, "opens": "08:30", "closes": "17:30"}]
    assert created["mandatory"] is True
    assert AuditEvent.objects.filter(action="instrument.created", target_id=str(created["id"])).exists()


@pytest.mark.parametrize("field,value", [
    ("lab", "lab-b"), ("organization", 1), ("listing_state", "published"), ("share_mode", "not_shared"),
    ("lab_id", 2), ("published_at", "2020-01-01T00:00:00Z"), ("photo", "x.jpg"),
])
def test_patch_refuses_fields_that_have_their_own_rules(world, api_as, make_instrument, field, value):
    instrument = make_instrument()
    response = api_as(world.manager).patch(f"/instruments/{instrument.pk}", {field: value})
    assert response.status_code == 422, response.content
    fresh = Instrument.objects.get(pk=instrument.pk)
    assert (fresh.lab_id, fresh.listing_state, fresh.share_mode) == (world.lab_a.pk, "published", "external")


def test_patch_changes_only_what_is_sent_and_is_audited(world, api_as, make_instrument):
    instrument = make_instrument(name_en="Old")
    response = api_as(world.manager).patch(f"/instruments/{instrument.pk}",
                                           {"name_en": "New", "category": "010101", "purchase_date": None})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name_en"], body["category"]["code"], body["purchase_date"]) == ("New", "010101", None)
    event = AuditEvent.objects.filter(action="instrument.updated").last()
    assert event.before == {"name_en": "Old", "category_id": "010102", "purchase_date": "2024-03-04"}


def test_patch_validates_against_the_category_table(world, api_as, make_instrument):
    instrument = make_instrument()
    client = api_as(world.manager)
    assert client.patch(f"/instruments/{instrument.pk}", {"category": "999999"}).status_code == 422
    coarse = client.patch(f"/instruments/{instrument.pk}", {"category": "010100"})
    assert coarse.status_code == 422 and "sub-categories" in coarse.json()["detail"]


def test_a_mandatory_instrument_cannot_be_unpublished_or_set_to_not_shared_without_approval(
        world, api_as, make_instrument):
    instrument = make_instrument(original_value="500000")
    client = api_as(world.manager)
    assert client.post(f"/instruments/{instrument.pk}/unpublish").json()["code"] == "approval_required"
    assert client.post(f"/instruments/{instrument.pk}/share-mode",
                       {"share_mode": "not_shared"}).json()["code"] == "approval_required"
    request = client.post(f"/instruments/{instrument.pk}/listing-requests",
                          {"kind": "not_shared", "justification": "承担保密项目，项目期内申请暂不共享。" * 2})
    assert request.status_code == 201
    request_id = request.json()["id"]
    assert client.post(f"/listing-requests/{request_id}/decision", {"approve": True}).status_code == 403
    decided = api_as(world.bureau).post(f"/listing-requests/{request_id}/decision", {"approve": True, "note": "同意"})
    assert decided.status_code == 200 and decided.json()["state"] == "approved"
    assert Instrument.objects.get(pk=instrument.pk).share_mode == "not_shared"
    actions = list(AuditEvent.objects.filter(target_id=str(instrument.pk)).values_list("action", flat=True))
    assert "instrument.listing_change_requested" in actions and "instrument.listing_change_approved" in actions


def test_listing_requests_are_listed_for_the_bureau_and_the_owning_manager_only(world, api_as, make_instrument):
    instrument = make_instrument()
    services.request_listing_change(actor=world.manager, instrument_id=instrument.pk, kind="unpublish",
                                    justification="设备长期故障且无法修复，申请下线。" * 2)
    assert len(api_as(world.bureau).get("/listing-requests", {"state": "pending"}).json()) == 1
    assert len(api_as(world.manager).get("/listing-requests").json()) == 1
    assert api_as(world.other_manager).get("/listing-requests").json() == []


def test_photos_are_checked_by_their_bytes(world, api_as, make_instrument, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    instrument = make_instrument()
    client = api_as(world.manager).client
    headers = api_as(world.manager).headers
    fake = io.BytesIO(b"<svg onload=alert(1)>")
    fake.name = "photo.png"
    response = client.post(f"/api/v1/instruments/{instrument.pk}/photo", {"file": fake}, headers=headers)
    assert response.status_code == 422 and response.json()["code"] == "invalid_photo"
    png = io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    png.name = "photo.png"
    response = client.post(f"/api/v1/instruments/{instrument.pk}/photo", {"file": png}, headers=headers)
    assert response.status_code == 200, response.content
    assert response.json()["photo_url"].endswith(".png")
