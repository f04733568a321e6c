"""Waiting lists (bookings.services.waitlist): freed time is offered first in line first, held while the offer
is open, booked through the normal create path on accept, passed on when declined or left unanswered."""

import datetime as dt

import pytest
from django.core import mail

from bookings import services
from bookings.models import Booking, Notification, UserCredit, WaitlistEntry
from instrumentshare.accounts import services as account_services
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from tests.bookings.conftest import make_instrument, next_weekday

pytestmark = pytest.mark.django_db

State = WaitlistEntry.State


@pytest.fixture
def taken(world, instrument, slot, django_capture_on_commit_callbacks):
    """The slot, booked by the other researcher."""
    start, end = slot
    booking = services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=start, end=end,
                                      purpose="theirs")
    return booking


def _join(user, instrument, start, end, **kwargs):
    return services.join_waitlist(user=user, instrument_id=instrument.pk, start=start, end=end,
                                  purpose=kwargs.pop("purpose", "waiting"), **kwargs)


def _cancel(world, booking, capture):
    with capture(execute=True):
        services.cancel_booking(actor=booking.user, booking_id=booking.pk)


def _third(world, name="third"):
    user = account_services.create_user(actor=None, username=name, password="x" * 12, email=f"{name}@example.org",
                                        organization=world.org_a)
    account_services.set_membership(actor=None, lab=world.lab_a, user=user, role="member")
    return user


def test_a_waiting_user_is_offered_the_slot_when_the_holder_cancels_and_accepts_it(
        world, instrument, slot, taken, django_capture_on_commit_callbacks):
    entry = _join(world.researcher, instrument, *slot)
    assert entry.state == State.WAITING and entry.is_exact
    mail.outbox.clear()
    _cancel(world, taken, django_capture_on_commit_callbacks)
    entry.refresh_from_db()
    assert entry.state == State.OFFERED
    assert (entry.offer_start, entry.offer_end) == slot
    hold = entry.hold
    assert hold.state == Booking.State.HELD and hold.user_id == world.researcher.pk
    offers = [message for message in mail.outbox if "Waiting list" in message.subject]
    assert len(offers) == 1 and offers[0].to == [world.researcher.email]
    assert "候补" in offers[0].body and "held for you" in offers[0].body
    with django_capture_on_commit_callbacks(execute=True):
        booking = services.accept_offer(user=world.researcher, entry_id=entry.pk)
    entry.refresh_from_db()
    hold.refresh_from_db()
    assert booking.state == Booking.State.CONFIRMED and (booking.start, booking.end) == slot
    assert booking.user_id == world.researcher.pk and booking.purpose == "waiting"
    assert entry.state == State.BOOKED and entry.booking_id == booking.pk
    assert hold.state == Booking.State.CANCELLED
    assert Booking.objects.filter(instrument=instrument, state__in=Booking.ACTIVE_STATES).count() == 1
    actions = list(AuditEvent.objects.filter(target_type="bookings.waitlistentry", target_id=str(entry.pk))
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["waitlist.joined", "waitlist.offered", "waitlist.accepted"]
    # Accepting twice answers with the same booking.
    assert services.accept_offer(user=world.researcher, entry_id=entry.pk).pk == booking.pk


def test_an_offer_holds_the_slot_so_nobody_else_books_it(world, instrument, slot, taken,
                                                          django_capture_on_commit_callbacks):
    _join(world.researcher, instrument, *slot)
    _cancel(world, taken, django_capture_on_commit_callbacks)
    with pytest.raises(Conflict) as refused:
        services.create_booking(user=_third(world), instrument_id=instrument.pk, start=slot[0], end=slot[1],
                                purpose="mine now")
    assert refused.value.code == "slot_taken"


def test_first_in_line_is_offered_and_declining_passes_it_to_the_next(world, instrument, slot, taken,
                                                                      django_capture_on_commit_callbacks):
    first = _join(world.researcher, instrument, *slot)
    second = _join(_third(world), instrument, *slot)
    _cancel(world, taken, django_capture_on_commit_callbacks)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.OFFERED, State.WAITING)
    with django_capture_on_commit_callbacks(execute=True):
        services.decline_offer(user=world.researcher, entry_id=first.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.DECLINED, State.OFFERED)
    assert first.hold.state == Booking.State.CANCELLED
    assert Booking.objects.filter(instrument=instrument, state=Booking.State.HELD).count() == 1
    with pytest.raises(Conflict) as refused:
        services.accept_offer(user=world.researcher, entry_id=first.pk)
    assert refused.value.code == "offer_expired"


def test_an_unanswered_offer_lapses_in_the_periodic_job_and_goes_to_the_next(
        world, instrument, slot, taken, settings, django_capture_on_commit_callbacks):
    settings.WAITLIST_OFFER_MINUTES = 30
    first = _join(world.researcher, instrument, *slot)
    second = _join(_third(world), instrument, *slot)
    _cancel(world, taken, django_capture_on_commit_callbacks)
    first.refresh_from_db()
    expires = first.offer_expires_at
    # A minute before it lapses, nothing happens.
    assert services.process_waitlists(now=expires - dt.timedelta(minutes=1))["lapsed"] == 0
    first.refresh_from_db()
    assert first.state == State.OFFERED
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.process_waitlists(now=expires)
    assert outcome["lapsed"] == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.LAPSED, State.OFFERED)
    with pytest.raises(Conflict) as refused:
        services.accept_offer(user=world.researcher, entry_id=first.pk, now=expires)
    assert refused.value.code == "offer_expired"
    assert AuditEvent.objects.filter(action="waitlist.offer_lapsed", target_id=str(first.pk)).exists()


def test_an_offer_cannot_be_accepted_after_it_expired_even_before_the_job_ran(
        world, instrument, slot, taken, django_capture_on_commit_callbacks):
    entry = _join(world.researcher, instrument, *slot)
    _cancel(world, taken, django_capture_on_commit_callbacks)
    entry.refresh_from_db()
    with pytest.raises(Conflict) as refused:
        services.accept_offer(user=world.researcher, entry_id=entry.pk, now=entry.offer_expires_at)
    assert refused.value.code == "offer_expired"


def test_someone_no_longer_allowed_to_book_is_passed_over(world, instrument, slot, taken,
                                                          django_capture_on_commit_callbacks):
    banned = _join(world.researcher, instrument, *slot)
    next_in_line = _join(_third(world), instrument, *slot)
    UserCredit.objects.update_or_create(user=world.researcher, defaults={"score": 0})
    _cancel(world, taken, django_capture_on_commit_callbacks)
    banned.refresh_from_db()
    next_in_line.refresh_from_db()
    assert (banned.state, next_in_line.state) == (State.WAITING, State.OFFERED)


def test_any_two_hours_in_a_window_is_offered_the_first_time_that_frees(world, instrument,
                                                                         django_capture_on_commit_callbacks):
    start = next_weekday(2, 8)
    bookings = [services.create_booking(user=world.other_researcher, instrument_id=instrument.pk,
                                        start=start + dt.timedelta(hours=2 * index),
                                        end=start + dt.timedelta(hours=2 * index + 2), purpose="full")
                for index in range(5)]
    entry = _join(world.researcher, instrument, start, start + dt.timedelta(hours=10), minutes=120)
    assert not entry.is_exact
    _cancel(world, bookings[3], django_capture_on_commit_callbacks)
    entry.refresh_from_db()
    assert entry.state == State.OFFERED
    assert (entry.offer_start, entry.offer_end) == (bookings[3].start, bookings[3].end)


def test_time_freed_by_a_reschedule_or_a_rejection_is_offered(world, slot, django_capture_on_commit_callbacks):
    instrument = make_instrument(world, name="显微镜", policy={"approval": "all"})
    start, end = slot
    booking = services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=start, end=end,
                                      purpose="theirs")
    entry = _join(world.researcher, instrument, start, end)
    with django_capture_on_commit_callbacks(execute=True):
        services.reschedule_booking(actor=world.other_researcher, booking_id=booking.pk,
                                    start=start + dt.timedelta(days=1), end=end + dt.timedelta(days=1))
    entry.refresh_from_db()
    assert entry.state == State.OFFERED
    later = _join(_third(world), instrument, start + dt.timedelta(days=1), end + dt.timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_booking(actor=world.manager, booking_id=booking.pk, reason="no")
    later.refresh_from_db()
    assert later.state == State.OFFERED


def test_leaving_releases_an_offer_to_the_next_and_the_entry_is_gone_from_the_line(
        world, instrument, slot, taken, django_capture_on_commit_callbacks):
    first = _join(world.researcher, instrument, *slot)
    second = _join(_third(world), instrument, *slot)
    _cancel(world, taken, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.leave_waitlist(user=world.researcher, entry_id=first.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.LEFT, State.OFFERED)


def test_joining_is_checked_and_bounded(world, instrument, slot, taken, settings):
    start, end = slot
    with pytest.raises(Conflict) as free:
        _join(world.researcher, instrument, start + dt.timedelta(days=1), end + dt.timedelta(days=1))
    assert free.value.code == "time_free"
    with pytest.raises(Invalid) as off_grid:
        _join(world.researcher, instrument, start + dt.timedelta(minutes=7), end)
    assert off_grid.value.code == "off_grid"
    with pytest.raises(Invalid) as too_long:
        _join(world.researcher, instrument, start, start + dt.timedelta(days=20), minutes=60)
    assert too_long.value.code == "window_too_long"
    with pytest.raises(Invalid) as no_fit:
        _join(world.researcher, instrument, start, end, minutes=180)
    assert no_fit.value.code == "invalid_minutes"
    _join(world.researcher, instrument, start, end)
    with pytest.raises(Conflict) as again:
        _join(world.researcher, instrument, start, end)
    assert again.value.code == "already_waiting"
    settings.WAITLIST_MAX_ACTIVE_ENTRIES = 1
    with pytest.raises(Conflict) as full:
        _join(world.researcher, instrument, start, start + dt.timedelta(hours=1))
    assert full.value.code == "waitlist_limit"


def test_only_people_who_may_book_join_and_only_the_owner_sees_an_entry(world, slot):
    hidden = make_instrument(world, name="内部", share_mode="internal")
    with pytest.raises((NotFound, Forbidden)):
        _join(world.other_researcher, hidden, *slot)
    instrument = make_instrument(world, name="共享")
    services.create_booking(user=world.other_researcher, instrument_id=instrument.pk, start=slot[0], end=slot[1],
                            purpose="x")
    entry = _join(world.researcher, instrument, *slot)
    for action in (services.leave_waitlist, services.decline_offer, services.accept_offer):
        with pytest.raises(NotFound):
            action(user=world.other_researcher, entry_id=entry.pk)


def test_entries_whose_time_passed_end_in_the_periodic_job(world, instrument, slot, taken):
    entry = _join(world.researcher, instrument, *slot)
    assert services.process_waitlists(now=slot[1] + dt.timedelta(minutes=1))["ended"] == 1
    entry.refresh_from_db()
    assert entry.state == State.ENDED


def test_an_offer_mail_is_not_sent_once_the_offer_was_answered(world, instrument, slot, taken,
                                                               django_capture_on_commit_callbacks):
    from bookings.services import notifications

    entry = _join(world.researcher, instrument, *slot)
    services.cancel_booking(actor=world.other_researcher, booking_id=taken.pk)   # no commit hooks: nothing sent
    services.process_waitlists()
    entry.refresh_from_db()
    row = Notification.objects.get(booking=entry.hold, kind=Notification.Kind.OFFER)
    services.decline_offer(user=world.researcher, entry_id=entry.pk)
    mail.outbox.clear()
    notifications.send(row.pk)
    row.refresh_from_db()
    assert row.state == Notification.State.SENT and row.last_error and not mail.outbox


def test_time_freed_by_removed_downtime_is_offered_by_the_periodic_job(world, instrument, slot):
    from catalog import services as catalog_services

    downtime = catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk, start=slot[0],
                                             end=slot[1], kind="planned", reason="pump service")
    entry = _join(world.researcher, instrument, *slot)
    assert services.process_waitlists()["offered"] == 0
    catalog_services.cancel_downtime(actor=world.manager, instrument_id=instrument.pk, downtime_id=downtime.pk)
    assert services.process_waitlists()["offered"] == 1
    entry.refresh_from_db()
    assert entry.state == State.OFFERED and (entry.offer_start, entry.offer_end) == slot
