import datetime as dt

import pytest
from django.core import mail

from bookings.models import Booking, Notification
from instrumentshare.audit.models import AuditEvent
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.django_db


def book(api, instrument, start, end, **extra):
    return api.post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                  "end": end.isoformat(), "purpose": "SEM imaging of samples", **extra})


def test_a_researcher_books_a_free_slot(world, api_as, instrument, slot, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = book(api_as(world.researcher), instrument, *slot)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "confirmed" and body["is_internal"] is True
    assert body["time_zone"] == "Asia/Shanghai"
    assert dt.datetime.fromisoformat(body["start"]) == slot[0]
    booking = Booking.objects.get(pk=body["id"])
    assert booking.charged_lab == world.lab_a
    assert AuditEvent.objects.filter(action="booking.created_confirmed", target_id=str(booking.pk)).exists()
    assert Notification.objects.filter(booking=booking, kind="invitation", state="sent").count() == 1
    assert len(mail.outbox) == 1


def test_an_overlapping_booking_is_refused_with_the_conflicting_interval(world, api_as, instrument, slot):
    assert book(api_as(world.researcher), instrument, *slot).status_code == 201
    start, end = slot
    response = book(api_as(world.other_researcher), instrument, start + dt.timedelta(hours=1),
                    end + dt.timedelta(hours=1))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "slot_taken"
    assert dt.datetime.fromisoformat(body["conflict"]["start"]) == start
    assert Booking.objects.count() == 1


def test_back_to_back_bookings_are_allowed(world, api_as, instrument, slot):
    start, end = slot
    assert book(api_as(world.researcher), instrument, start, end).status_code == 201
    assert book(api_as(world.other_researcher), instrument, end, end + dt.timedelta(hours=1)).status_code == 201


def test_the_buffer_keeps_bookings_apart(world, api_as, slot):
    instrument = make_instrument(world, name="核磁", policy={"buffer_minutes": 30})
    start, end = slot
    assert book(api_as(world.researcher), instrument, start, end).status_code == 201
    assert book(api_as(world.other_researcher), instrument, end, end + dt.timedelta(hours=1)).status_code == 409
    later = end + dt.timedelta(minutes=30)
    assert book(api_as(world.other_researcher), instrument, later, later + dt.timedelta(hours=1)).status_code == 201
    before = start - dt.timedelta(hours=1)
    assert book(api_as(world.other_researcher), instrument, before, start).status_code == 409


@pytest.mark.parametrize(
    "shift,length,code",
    [
        (dt.timedelta(minutes=10), dt.timedelta(hours=1), "off_grid"),
        (dt.timedelta(hours=-3), dt.timedelta(hours=2), "closed"),  # 07:00, before opening at 08:00
        (dt.timedelta(hours=7), dt.timedelta(hours=2), "closed"),  # 17:00–19:00, past closing
        (dt.timedelta(0), dt.timedelta(minutes=15), "too_short"),
        (dt.timedelta(0), dt.timedelta(hours=9), "too_long"),
        (dt.timedelta(0), dt.timedelta(hours=-1), "invalid_range"),
    ],
)
def test_rule_violations_are_422_with_a_clear_code(world, api_as, instrument, slot, shift, length, code):
    start = slot[0] + shift
    response = book(api_as(world.researcher), instrument, start, start + length)
    assert response.status_code == 422, response.json()
    assert response.json()["code"] == code


def test_too_soon_and_beyond_the_horizon(world, api_as, instrument):
    api = api_as(world.researcher)
    soon = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=30)
    assert book(api, instrument, soon, soon + dt.timedelta(hours=1)).json()["code"] in {"too_soon", "off_grid",
                                                                                      "closed"}
    far = next_weekday(1, 10, weeks_ahead=12)
    assert book(api, instrument, far, far + dt.timedelta(hours=1)).json()["code"] == "beyond_horizon"


def test_a_time_without_offset_is_refused(world, api_as, instrument, slot):
    api = api_as(world.researcher)
    response = api.post("/bookings", {"instrument_id": instrument.pk, "start": "2026-12-01T10:00:00",
                                      "end": "2026-12-01T11:00:00", "purpose": "x"})
    assert response.status_code == 422 and response.json()["code"] == "naive_datetime"


def test_downtime_blocks_booking(world, api_as, instrument, slot):
    from catalog import services as catalog_services

    catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk, start=slot[0],
                                  end=slot[1], kind="planned", reason="annual service")
    response = book(api_as(world.researcher), instrument, *slot)
    assert response.status_code == 422 and response.json()["code"] == "downtime"


def test_unknown_and_invisible_instruments_are_404(world, api_as, slot):
    draft = make_instrument(world, name="未发布", publish=False)
    assert book(api_as(world.other_researcher), draft, *slot).status_code == 404
    response = api_as(world.researcher).post("/bookings", {"instrument_id": 999999, "start": slot[0].isoformat(),
                                                           "end": slot[1].isoformat(), "purpose": "x"})
    assert response.status_code == 404


def test_share_mode_and_qualification_rules(world, api_as, slot):
    internal = make_instrument(world, name="内部仪器", share_mode="internal")
    assert book(api_as(world.company_user), internal, *slot).json()["code"] == "internal_only"
    assert book(api_as(world.researcher), internal, *slot).status_code == 201
    trained = make_instrument(world, name="需培训", policy={"qualification_required": True})
    assert book(api_as(world.researcher), trained, *slot).json()["code"] == "not_qualified"
    from catalog import services as catalog_services

    catalog_services.grant_qualification(actor=world.manager, instrument_id=trained.pk, user=world.researcher)
    assert book(api_as(world.researcher), trained, *slot).status_code == 201


def test_external_users_need_approval_when_the_policy_says_so(world, api_as, slot):
    instrument = make_instrument(world, name="审批仪器", policy={"approval": "external"})
    pending = book(api_as(world.company_user), instrument, *slot).json()
    assert pending["state"] == "pending" and pending["is_internal"] is False
    # another lab's manager cannot see it; the booker cannot approve their own; the lab's manager can
    assert api_as(world.other_manager).post(f"/bookings/{pending['id']}/approve").status_code == 404
    assert api_as(world.company_user).post(f"/bookings/{pending['id']}/approve").status_code == 403
    approved = api_as(world.manager).post(f"/bookings/{pending['id']}/approve").json()
    assert approved["state"] == "confirmed" and approved["sequence"] == 1
    again = api_as(world.manager).post(f"/bookings/{pending['id']}/approve").json()
    assert again["sequence"] == 1  # idempotent


def test_a_rejection_needs_a_reason_and_frees_the_slot(world, api_as, slot):
    instrument = make_instrument(world, name="全审批", policy={"approval": "all"})
    pending = book(api_as(world.researcher), instrument, *slot).json()
    manager = api_as(world.manager)
    assert manager.post(f"/bookings/{pending['id']}/reject", {"reason": ""}).status_code == 422
    rejected = manager.post(f"/bookings/{pending['id']}/reject", {"reason": "maintenance week"}).json()
    assert rejected["state"] == "rejected"
    assert book(api_as(world.other_researcher), instrument, *slot).json()["state"] == "pending"


def test_cancellation_by_the_booker_and_by_the_lab(world, api_as, instrument, slot):
    first = book(api_as(world.researcher), instrument, *slot).json()
    assert api_as(world.other_researcher).post(f"/bookings/{first['id']}/cancel").status_code == 404
    cancelled = api_as(world.researcher).post(f"/bookings/{first['id']}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["late_cancellation"] is False
    second = book(api_as(world.other_researcher), instrument, *slot).json()
    lab = api_as(world.manager)
    assert lab.post(f"/bookings/{second['id']}/cancel", {"reason": ""}).json()["code"] == "reason_required"
    assert lab.post(f"/bookings/{second['id']}/cancel", {"reason": "repair"}).json()["state"] == "cancelled"


def test_a_late_cancellation_is_recorded_and_costs_credit(world, api_as, instrument):
    from bookings import services

    soon = next_weekday(1, 10, weeks_ahead=0)
    now = soon - dt.timedelta(hours=3)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=soon,
                                      end=soon + dt.timedelta(hours=1), purpose="x", now=now)
    services.cancel_booking(actor=world.researcher, booking_id=booking.pk, now=now + dt.timedelta(hours=1))
    booking.refresh_from_db()
    assert booking.late_cancellation is True
    assert services.credit_score(world.researcher) == 95


def test_reschedule_keeps_the_booking_and_raises_the_sequence(world, api_as, instrument, slot):
    api = api_as(world.researcher)
    created = book(api, instrument, *slot).json()
    new_start = slot[0] + dt.timedelta(days=1)
    moved = api.patch(f"/bookings/{created['id']}", {"start": new_start.isoformat(),
                                                     "end": (new_start + dt.timedelta(hours=1)).isoformat()}).json()
    assert moved["id"] == created["id"] and moved["sequence"] == 1
    assert dt.datetime.fromisoformat(moved["start"]) == new_start
    blocker = book(api_as(world.other_researcher), instrument, *slot).json()
    assert blocker["state"] == "confirmed"  # the old time is free again
    clash = api.patch(f"/bookings/{created['id']}", {"start": slot[0].isoformat(), "end": slot[1].isoformat()})
    assert clash.status_code == 409


def test_listing_is_scoped(world, api_as, instrument, slot):
    book(api_as(world.researcher), instrument, *slot)
    assert api_as(world.researcher).get("/bookings").json()["count"] == 1
    assert api_as(world.other_researcher).get("/bookings").json()["count"] == 0
    assert api_as(world.manager).get("/bookings", {"scope": "lab"}).json()["count"] == 1
    assert api_as(world.other_manager).get("/bookings", {"scope": "lab"}).json()["count"] == 0
    assert api_as(None).get("/bookings").status_code == 401


def test_availability_shows_free_and_busy_without_people(world, api_as, instrument, slot):
    book(api_as(world.researcher), instrument, *slot)
    day_start = slot[0].replace(hour=0)
    response = api_as(None).get(f"/instruments/{instrument.pk}/availability",
                                {"start": day_start.isoformat(), "end": (day_start + dt.timedelta(days=1)).isoformat()})
    assert response.status_code == 200
    body = response.json()
    free = [(dt.datetime.fromisoformat(i["start"]), dt.datetime.fromisoformat(i["end"])) for i in body["free"]]
    assert free == [(slot[0].replace(hour=8), slot[0]), (slot[1], slot[0].replace(hour=18))]
    busy = [(dt.datetime.fromisoformat(i["start"]), dt.datetime.fromisoformat(i["end"])) for i in body["busy"]]
    assert busy == [slot]
    assert set(body["busy"][0]) == {"start", "end"}  # no people, no purposes
    year_later = (day_start + dt.timedelta(days=400)).isoformat()
    too_long = api_as(None).get(f"/instruments/{instrument.pk}/availability",
                                {"start": day_start.isoformat(), "end": year_later})
    assert too_long.status_code == 422 and too_long.json()["code"] == "range_too_long"
