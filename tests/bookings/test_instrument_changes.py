"""Changes to an instrument that move its bookings: shown first (dry run), then cancelled or kept, never silent."""

import datetime as dt

import pytest

from bookings import queries, services
from bookings.models import Booking, CreditEvent, Notification
from catalog import services as catalog_services
from catalog.impact import Impact
from catalog.models import Downtime, OpeningException
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Conflict

from .conftest import WEEKDAYS_8_TO_18, make_instrument, next_weekday

H = dt.timedelta(hours=1)


def book(user, instrument, start, hours=2):
    return services.create_booking(user=user, instrument_id=instrument.pk, start=start, end=start + hours * H,
                                   purpose="imaging")


@pytest.fixture
def two_bookings(world, instrument):
    """Tuesday 13:00-15:00 (the researcher's) and 15:00-16:00 (the manager's own), and Wednesday 10:00."""
    tuesday = next_weekday(1, 13)
    return (book(world.researcher, instrument, tuesday), book(world.manager, instrument, tuesday + 2 * H, hours=1),
            book(world.other_researcher, instrument, next_weekday(2, 10)))


def downtime(world, instrument, **options):
    start = next_weekday(1, 12)
    return catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk, start=start,
                                         end=start + dt.timedelta(hours=5, minutes=30), kind="unplanned",
                                         reason="vacuum leak", **options)


def test_a_dry_run_names_the_bookings_downtime_would_hit_and_saves_nothing(world, instrument, two_bookings):
    audited = AuditEvent.objects.count()
    impact = downtime(world, instrument, dry_run=True)
    assert isinstance(impact, Impact) and impact.dry_run
    assert [(b.id, b.why) for b in impact.affected] == [(two_bookings[0].pk, "downtime"),
                                                        (two_bookings[1].pk, "downtime")]
    assert not Downtime.objects.exists() and AuditEvent.objects.count() == audited
    assert set(Booking.objects.values_list("state", flat=True)) == {"confirmed"}


def test_saving_without_a_decision_is_refused_with_the_affected_bookings(world, instrument, two_bookings):
    with pytest.raises(Conflict) as refused:
        downtime(world, instrument)
    assert refused.value.code == "bookings_affected"
    assert [b["id"] for b in refused.value.extra["bookings"]] == [two_bookings[0].pk, two_bookings[1].pk]
    assert not Downtime.objects.exists()


def test_cancelling_sends_cancel_without_penalty_and_audits_one_operation(world, instrument, two_bookings):
    researchers, managers_own, untouched = two_bookings
    downtime(world, instrument, bookings="cancel", notice="Pump replaced; please rebook")
    for booking in (researchers, managers_own):
        booking.refresh_from_db()
        assert booking.state == "cancelled" and booking.reason == "Pump replaced; please rebook"
        assert not booking.late_cancellation
        assert Notification.objects.filter(booking=booking, kind="cancellation").exists()
        assert AuditEvent.objects.filter(action="booking.cancelled_by_lab", target_id=str(booking.pk)).exists()
    assert not CreditEvent.objects.exists()  # not even the manager's own booking costs credit
    untouched.refresh_from_db()
    assert untouched.state == "confirmed"
    settled = AuditEvent.objects.get(action="instrument.bookings_cancelled")
    assert settled.after["bookings"] == [researchers.pk, managers_own.pk] and "vacuum leak" in settled.after["change"]
    assert Downtime.objects.count() == 1


def test_keeping_flags_each_booking_for_its_booker(world, instrument, two_bookings):
    saved = downtime(world, instrument, bookings="keep")
    assert isinstance(saved, Downtime) and [b.id for b in saved.impact.affected] == [two_bookings[0].pk,
                                                                                     two_bookings[1].pk]
    flagged = Booking.objects.get(pk=two_bookings[0].pk)
    assert flagged.state == "confirmed" and "vacuum leak" in flagged.flag and flagged.flagged_at
    assert Booking.objects.get(pk=two_bookings[2].pk).flag == ""
    assert AuditEvent.objects.filter(action="instrument.bookings_kept").count() == 1


def test_downtime_over_no_booking_needs_no_decision(world, instrument):
    assert isinstance(downtime(world, instrument), Downtime)


def test_new_opening_hours_find_a_booking_left_half_in_closed_time(world, instrument, two_bookings):
    shorter = [(day, 8 * 60, 14 * 60) for day in range(5)]  # closes at 14:00: 13-15 half out, 15-16 out
    impact = catalog_services.set_opening_hours(actor=world.manager, instrument_id=instrument.pk, rules=shorter,
                                                dry_run=True)
    assert [(b.id, b.why) for b in impact.affected] == [(two_bookings[0].pk, "closed"), (two_bookings[1].pk, "closed")]
    assert instrument.opening_rules.filter(close_minute=18 * 60).count() == 5  # rolled back
    catalog_services.set_opening_hours(actor=world.manager, instrument_id=instrument.pk, rules=shorter,
                                       bookings="cancel", notice="Shorter hours from next week")
    assert Booking.objects.get(pk=two_bookings[0].pk).state == "cancelled"
    assert Booking.objects.get(pk=two_bookings[2].pk).state == "confirmed"


def test_closing_a_day_affects_only_that_days_bookings(world, instrument, two_bookings):
    wednesday = next_weekday(2, 0).date()
    impact = catalog_services.set_opening_exception(actor=world.manager, instrument_id=instrument.pk, date=wednesday,
                                                    reason="power cut", dry_run=True)
    assert [b.id for b in impact.affected] == [two_bookings[2].pk]
    assert not OpeningException.objects.exists()
    catalog_services.set_opening_exception(actor=world.manager, instrument_id=instrument.pk, date=wednesday,
                                           reason="power cut", bookings="keep")
    assert "power cut" in Booking.objects.get(pk=two_bookings[2].pk).flag


def test_requiring_a_qualification_affects_the_unqualified_bookers(world, instrument, two_bookings):
    catalog_services.grant_qualification(actor=world.manager, instrument_id=instrument.pk, user=world.researcher)
    impact = catalog_services.update_policy(actor=world.manager, instrument_id=instrument.pk,
                                            qualification_required=True, dry_run=True)
    assert {b.id for b in impact.affected} == {two_bookings[1].pk, two_bookings[2].pk}
    assert {b.why for b in impact.affected} == {"not_qualified"}


def test_unpublishing_affects_the_bookings_of_people_outside_the_lab(world):
    instrument = make_instrument(world, name="小型离心机", original_value="100000.00")  # not bound to be listed
    for user, day in ((world.researcher, 1), (world.manager, 2), (world.other_researcher, 3)):
        book(user, instrument, next_weekday(day, 10))
    impact = catalog_services.unpublish(actor=world.manager, instrument_id=instrument.pk, dry_run=True)
    # The lab's own people still book a draft instrument; the outsider's booking is the one it ends.
    assert [(b.booker, b.why) for b in impact.affected] == [("other_researcher", "not_bookable")]
    instrument.refresh_from_db()
    assert instrument.is_published
    catalog_services.unpublish(actor=world.manager, instrument_id=instrument.pk, bookings="cancel",
                               notice="Moved to another building")
    assert dict(Booking.objects.values_list("user__username", "state")) == {
        "researcher": "confirmed", "manager": "confirmed", "other_researcher": "cancelled"}


def test_revoking_a_qualification_affects_only_that_persons_bookings(world, two_bookings):
    instrument = make_instrument(world, name="透射电镜", policy={"qualification_required": True},
                                 hours=WEEKDAYS_8_TO_18)
    for user in (world.researcher, world.other_researcher):
        catalog_services.grant_qualification(actor=world.manager, instrument_id=instrument.pk, user=user)
    mine = book(world.researcher, instrument, next_weekday(3, 9))
    book(world.other_researcher, instrument, next_weekday(3, 14))
    qualification = instrument.qualifications.get(user=world.researcher)
    with pytest.raises(Conflict):
        catalog_services.revoke_qualification(actor=world.manager, qualification_id=qualification.pk,
                                              reason="safety incident")
    catalog_services.revoke_qualification(actor=world.manager, qualification_id=qualification.pk,
                                          reason="safety incident", bookings="cancel")
    assert list(Booking.objects.filter(instrument=instrument, state="cancelled").values_list("id", flat=True)) == [
        mine.pk]


def test_the_api_shows_affected_bookings_before_saving_and_then_cancels_them(world, api_as, instrument,
                                                                            two_bookings):
    client = api_as(world.manager)
    start = next_weekday(1, 12)
    body = {"start": start.isoformat(), "end": (start + 5 * H).isoformat(), "kind": "unplanned",
            "reason": "vacuum leak"}
    url = f"/instruments/{instrument.pk}/downtime"
    preview = client.post(url, {**body, "dry_run": True})
    assert preview.status_code == 200, preview.content
    assert [(b["id"], b["booker"], b["why"]) for b in preview.json()["affected"]] == [
        (two_bookings[0].pk, "researcher", "downtime"), (two_bookings[1].pk, "manager", "downtime")]
    refused = client.post(url, body)
    assert refused.status_code == 409 and refused.json()["code"] == "bookings_affected"
    assert len(refused.json()["bookings"]) == 2
    assert client.post(url, {**body, "bookings": "maybe"}).status_code == 422
    saved = client.post(url, {**body, "bookings": "cancel", "notice": "Pump failed"})
    assert saved.status_code == 201, saved.content
    assert saved.json()["bookings"] == "cancel" and len(saved.json()["affected"]) == 2
    assert Booking.objects.get(pk=two_bookings[0].pk).state == "cancelled"


def test_the_api_previews_new_hours_rules_and_a_closed_day(world, api_as, instrument, two_bookings):
    client = api_as(world.manager)
    base = f"/instruments/{instrument.pk}"
    hours = client.put(f"{base}/opening-hours", {"rules": [{"weekday": d, "opens": "08:00", "closes": "14:00"}
                                                            for d in range(5)], "dry_run": True})
    assert hours.status_code == 200 and len(hours.json()["affected"]) == 2, hours.content
    day = next_weekday(2, 0).date().isoformat()
    closed = client.post(f"{base}/opening-exceptions", {"date": day, "reason": "power cut", "dry_run": True})
    assert closed.status_code == 200 and [b["id"] for b in closed.json()["affected"]] == [two_bookings[2].pk]
    policy = client.patch(f"{base}/policy", {"max_minutes": 60, "dry_run": True})
    assert policy.status_code == 200 and [(b["id"], b["why"]) for b in policy.json()["affected"]] == [
        (two_bookings[0].pk, "duration"), (two_bookings[2].pk, "duration")]
    assert client.patch(f"{base}/policy", {"max_minutes": 60}).status_code == 409
    kept = client.patch(f"{base}/policy", {"max_minutes": 60, "bookings": "keep"})
    assert kept.status_code == 200 and kept.json()["max_minutes"] == 60
    other = api_as(world.other_manager).post(f"{base}/downtime", {"start": "2030-01-01T10:00:00+08:00",
                                                                 "end": "2030-01-01T11:00:00+08:00",
                                                                 "reason": "x", "dry_run": True})
    assert other.status_code == 403  # a dry run tells no one else's bookings
    # Kept through the shorter limit, Wednesday's booking is already refused: closing Wednesday is not
    # what affects it now, so this change names no booking of its own.
    again = client.post(f"{base}/opening-exceptions", {"date": day, "reason": "power cut", "dry_run": True})
    assert again.json()["affected"] == []


def test_the_downtime_page_lists_the_bookings_then_cancels_them_and_the_booker_rebooks(
        world, client, instrument, two_bookings, django_capture_on_commit_callbacks):
    from django.core import mail

    client.force_login(world.manager)
    url = f"/instruments/{instrument.pk}/downtime/"
    start = next_weekday(1, 12)
    form = {"start": start.strftime("%Y-%m-%dT%H:%M"), "end": (start + 5 * H).strftime("%Y-%m-%dT%H:%M"),
            "kind": "unplanned", "reason": "vacuum leak"}
    asked = client.post(url, form)
    assert asked.status_code == 200 and not Downtime.objects.exists()
    page = asked.content.decode()
    assert 'data-affected="2"' in page and "researcher" in page and 'name="bookings" value="cancel"' in page
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {**form, "bookings": "cancel", "notice": "Pump failed, sorry"})
    assert done.status_code == 302 and Downtime.objects.count() == 1
    cancelled = Booking.objects.get(pk=two_bookings[0].pk)
    assert cancelled.state == "cancelled" and cancelled.reason == "Pump failed, sorry"
    cancel_mail = [m for m in mail.outbox if m.to == [world.researcher.email]]
    assert len(cancel_mail) == 1 and "method=CANCEL" in str(cancel_mail[0].message()).replace('"', "")
    assert "rebook" in cancel_mail[0].body and "Pump failed, sorry" in cancel_mail[0].body

    client.force_login(world.researcher)
    detail = client.get(f"/bookings/{cancelled.pk}/").content.decode()
    assert 'data-testid="rebook"' in detail and 'data-testid="rebook-offer"' in detail
    # The nearest free 2 h on the grid: Tuesday 10:00-12:00, before the downtime (after it, 17:30-18:00 is short).
    [offer] = queries.rebook_offers(cancelled)
    assert (offer.instrument.pk, offer.start) == (instrument.pk, next_weekday(1, 10))
    rebooked = client.post(f"/bookings/{cancelled.pk}/rebook", {"instrument": instrument.pk,
                                                                 "start": offer.start.isoformat()})
    assert rebooked.status_code == 302
    new = Booking.objects.filter(user=world.researcher, state="confirmed").get()
    assert (new.start, new.end, new.purpose) == (offer.start, offer.end, cancelled.purpose)
    assert client.post(f"/bookings/{cancelled.pk}/rebook", {"instrument": instrument.pk,
                                                             "start": "not a time"}).status_code == 302


def test_a_kept_booking_shows_the_lab_notice_to_its_booker(world, client, instrument, two_bookings):
    downtime(world, instrument, bookings="keep", notice="Only the SE detector works that afternoon")
    client.force_login(world.researcher)
    page = client.get(f"/bookings/{two_bookings[0].pk}/").content.decode()
    assert 'data-testid="flag"' in page and "Only the SE detector works" in page
    assert 'data-testid="flag"' in client.get("/bookings/mine/").content.decode()


def test_an_approved_exemption_keeps_the_bookings_it_leaves_unbookable_flagged(world, instrument, two_bookings):
    request = catalog_services.request_listing_change(
        actor=world.manager, instrument_id=instrument.pk, kind="unpublish",
        justification="The instrument moves to a classified project for two years.")
    catalog_services.decide_listing_change(actor=world.bureau, request_id=request.pk, approve=True, note="ok")
    outsider = Booking.objects.get(pk=two_bookings[2].pk)   # other_researcher is not in the lab
    assert outsider.state == "confirmed" and "unpublished" in outsider.flag
    assert Booking.objects.get(pk=two_bookings[0].pk).flag == ""   # the lab's own people still book drafts
    kept = AuditEvent.objects.get(action="instrument.bookings_kept")
    assert kept.after["bookings"] == [outsider.pk]
