"""Waiting lists: join for a taken slot (or any N minutes in a window), be offered freed time, accept or decline.

Freed time (a booking cancelled, rejected, moved or shortened, an offer declined or lapsed, downtime
removed) is offered to the first entry in line whose user may still book it. The offer holds the slot
with a booking in state ``held`` (``bookings.services.holds``): it blocks the calendar under the same
guarantee as any booking, so nobody else takes the slot meanwhile, and two offers can never hold one
slot (on PostgreSQL the exclusion constraint; on SQLite the IMMEDIATE transaction serializes writers).
Accepting releases the hold and books the same time through the normal create path, with all its checks,
in one transaction: a normal booking racing the accept meets the hold or the booking, a 409 either way.

Lock order everywhere: the instrument, then the entry, then the booking; so offers, accepts, declines,
expiry and bookings of one instrument take turns and never deadlock.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Instrument
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, DomainError, Invalid, NotFound

from .. import availability, queries
from ..models import Booking, Notification, WaitlistEntry
from ..transitions import MOVES
from .lifecycle import _as_utc, _create_booking, _enqueue, _moved, _snapshot
from .rules import (
    charged_lab_id_for,
    check_credit,
    check_grid,
    check_may_book,
    check_quota,
    check_window,
    conflict_for,
    locked_instrument,
    raise_conflict,
)

logger = logging.getLogger(__name__)

State = WaitlistEntry.State
ENTRY_FIELDS = ("instrument_id", "user_id", "start", "end", "minutes", "state", "offer_start", "offer_end",
                "offer_expires_at", "hold_id", "booking_id")


def _entry_snapshot(entry: WaitlistEntry) -> dict:
    return {field: getattr(entry, field) for field in ENTRY_FIELDS}


def _own_entry(user, entry_id: int) -> WaitlistEntry:
    """The caller's entry, its instrument then the entry itself locked (in that order); 404 for anyone else's."""
    found = WaitlistEntry.objects.filter(pk=entry_id, user_id=user.pk).values_list("instrument_id", flat=True).first()
    if found is None:
        raise NotFound("not_found", "No such waiting-list entry.")
    instrument = locked_instrument(found, None)
    entry = WaitlistEntry.objects.select_for_update(of=("self",)).get(pk=entry_id)
    entry.instrument = instrument
    return entry


# --- finding freed time ---------------------------------------------------------------------------


def first_fit(instrument: Instrument, entry_start: dt.datetime, entry_end: dt.datetime, minutes: int, *,
              now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The earliest free time of ``minutes`` on the slot grid inside [entry_start, entry_end), within the
    bookable window (notice, horizon), or None."""
    free = availability.free_intervals(instrument, entry_start, entry_end, now=now)
    length = dt.timedelta(minutes=minutes)
    for slot in queries.bookable_starts(instrument, free):
        start = slot["start"].astimezone(dt.UTC)
        if start + length <= slot["end"]:
            return start, start + length
    return None


def _may_take(entry: WaitlistEntry, instrument: Instrument, start: dt.datetime, end: dt.datetime,
              now: dt.datetime) -> bool:
    """Whether the entry's user may book this time now (the create path's rules but the overlap check,
    which the hold itself makes)."""
    policy = instrument.policy
    try:
        check_may_book(entry.user, instrument)
        check_credit(entry.user)
        check_grid(instrument, policy, start, end)
        check_window(policy, start, end, now)
        check_quota(instrument, policy, entry.user, entry.charged_lab_id, start, end)
    except DomainError as error:
        logger.info("waiting-list entry %s passed over for %s: %s", entry.pk, start, error.code)
        return False
    return True


# --- joining and leaving --------------------------------------------------------------------------


def join_waitlist(*, user, instrument_id: int, start: dt.datetime, end: dt.datetime, purpose: str,
                  minutes: int | None = None, lab_id: int | None = None,
                  now: dt.datetime | None = None) -> WaitlistEntry:
    """Wait for [start, end) exactly, or (``minutes`` shorter than the window) for any ``minutes`` in it."""
    now = now or timezone.now()
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise Invalid("invalid_range", "The window must end after it starts.")
    span = int((end - start).total_seconds() // 60)
    minutes = span if minutes is None else minutes
    if not 0 < minutes <= span:
        raise Invalid("invalid_minutes", "The length must be positive and fit inside the window.")
    if end - start > dt.timedelta(days=settings.WAITLIST_MAX_WINDOW_DAYS):
        raise Invalid("window_too_long", f"Wait for a window of at most {settings.WAITLIST_MAX_WINDOW_DAYS} days.")
    purpose = (purpose or "").strip()
    if not purpose:
        raise Invalid("purpose_required", "Say what the booking is for.")
    with transaction.atomic():
        return _join(user, instrument_id, start, end, minutes, purpose, lab_id, now)


def _join(user, instrument_id, start, end, minutes, purpose, lab_id, now) -> WaitlistEntry:
    instrument = locked_instrument(instrument_id, user)
    policy = instrument.policy
    check_may_book(user, instrument)
    check_credit(user, instrument)
    length = dt.timedelta(minutes=minutes)
    check_grid(instrument, policy, start, start + length)
    check_grid(instrument, policy, end - length, end)
    check_window(policy, end - length, start + length, now)  # the last start still ahead, the first end in reach
    charged_lab_id = charged_lab_id_for(user, lab_id)
    # The instrument's lock serializes joins to one instrument; the user's row, joins to several at once,
    # so the bound on active entries holds under concurrent requests too.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    mine = WaitlistEntry.objects.filter(user=user, state__in=WaitlistEntry.ACTIVE_STATES)
    if mine.filter(instrument=instrument, start=start, end=end, minutes=minutes).exists():
        raise Conflict("already_waiting", "You are already on the waiting list for that time.")
    if mine.count() >= settings.WAITLIST_MAX_ACTIVE_ENTRIES:
        raise Conflict("waitlist_limit", f"You may wait for at most {settings.WAITLIST_MAX_ACTIVE_ENTRIES} "
                                         "times at once: leave one first.")
    free = first_fit(instrument, start, end, minutes, now=now)
    if free is not None:
        raise Conflict("time_free", "That time is free: book it instead of waiting.",
                       extra={"free": {"start": free[0].isoformat(), "end": free[1].isoformat()}})
    entry = WaitlistEntry.objects.create(user=user, instrument=instrument, charged_lab_id=charged_lab_id, start=start,
                                         end=end, minutes=minutes, purpose=purpose[:2000], created_at=now)
    record(actor=user, action="waitlist.joined", target=entry, after=_entry_snapshot(entry), now=now)
    return entry


@transaction.atomic
def leave_waitlist(*, user, entry_id: int, now: dt.datetime | None = None) -> WaitlistEntry:
    """Leave the list; an offer held for the entry is released and goes to the next in line."""
    now = now or timezone.now()
    entry = _own_entry(user, entry_id)
    if not entry.is_active:
        return entry
    return _close(entry, State.LEFT, actor=user, action="waitlist.left", now=now)


def _close(entry: WaitlistEntry, state: str, *, actor, action: str, now: dt.datetime) -> WaitlistEntry:
    """End an entry; release its hold (which offers the time to the next in line after commit)."""
    before = _entry_snapshot(entry)
    if entry.hold_id is not None and entry.state == State.OFFERED:
        _release_hold(entry.hold_id, actor=actor, now=now)
    entry.state = state
    entry.save(update_fields=["state", "updated_at"])
    record(actor=actor, action=action, target=entry, before=before, after=_entry_snapshot(entry), now=now)
    return entry


def _release_hold(hold_id: int, *, actor, now: dt.datetime) -> None:
    hold = Booking.objects.select_for_update(of=("self",)).get(pk=hold_id)
    if hold.state != Booking.State.HELD:
        return
    before = _snapshot(hold)
    hold.cancelled_by, hold.cancelled_at = actor, now
    _moved(hold, MOVES["release"], actor=actor, before=before)


# --- offers ---------------------------------------------------------------------------------------


def offer_freed_time(*, instrument_id: int, now: dt.datetime | None = None) -> list[int]:
    """Offer the instrument's free time to its waiting entries, first in line first. Returns the ids of the
    entries offered something. Safe to run twice, or at once in two processes: the instrument's lock makes
    the runs take turns, and a held slot is no longer free to the next run."""
    now = now or timezone.now()
    with transaction.atomic():
        instrument = locked_instrument(instrument_id, None)
        entries = list(WaitlistEntry.objects.select_for_update(of=("self",)).select_related("user")
                       .filter(instrument_id=instrument_id, state=State.WAITING, end__gt=now)
                       .order_by("created_at", "id")[:500])
        offered = []
        for entry in entries:
            slot = first_fit(instrument, entry.start, entry.end, entry.minutes, now=now)
            if slot is not None and _may_take(entry, instrument, *slot, now):
                _offer(entry, instrument, *slot, now=now)
                offered.append(entry.pk)
        return offered


def _offer(entry: WaitlistEntry, instrument: Instrument, start: dt.datetime, end: dt.datetime, *,
           now: dt.datetime) -> None:
    buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
    hold = Booking(instrument=instrument, user=entry.user, charged_lab_id=entry.charged_lab_id, start=start, end=end,
                   blocked_until=end + buffer, purpose=entry.purpose, state=Booking.State.HELD, created_at=now)
    hold.save()  # the exclusion constraint (PostgreSQL) refuses it if the time were somehow taken
    before = _entry_snapshot(entry)
    # Long enough to answer, but the booking must still be possible then (the instrument's notice).
    answer_by = start - dt.timedelta(minutes=instrument.policy.min_notice_minutes)
    entry.state, entry.hold = State.OFFERED, hold
    entry.offer_start, entry.offer_end = start, end
    entry.offer_expires_at = min(now + dt.timedelta(minutes=settings.WAITLIST_OFFER_MINUTES), answer_by)
    entry.save()
    record(actor=None, action="waitlist.offered", target=entry, before=before, after=_entry_snapshot(entry), now=now)
    _enqueue(hold, Notification.Kind.OFFER)


def accept_offer(*, user, entry_id: int, extras: dict | None = None, now: dt.datetime | None = None) -> Booking:
    """Book the offered time through the create path (every rule), releasing the hold in the same transaction."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _accept(user, entry_id, extras or {}, now)
    except IntegrityError as error:
        if "booking_no_overlap" in str(error):
            entry = WaitlistEntry.objects.select_related("instrument__policy").get(pk=entry_id)
            buffer = dt.timedelta(minutes=entry.instrument.policy.buffer_minutes)
            raise_conflict(conflict_for(entry.instrument, entry.offer_start, entry.offer_end, buffer, None), user.pk)
        raise


def _accept(user, entry_id: int, extras: dict, now: dt.datetime) -> Booking:
    entry = _own_entry(user, entry_id)
    if entry.state == State.BOOKED and entry.booking_id:
        return Booking.objects.get(pk=entry.booking_id)
    if entry.state != State.OFFERED or entry.offer_expires_at <= now:
        raise Conflict("offer_expired", "This offer is no longer open: the time went to the next in line.")
    before = _entry_snapshot(entry)
    _release_hold(entry.hold_id, actor=user, now=now)
    booking = _create_booking(user, entry.instrument_id, entry.offer_start, entry.offer_end, entry.purpose,
                              entry.charged_lab_id, now, extras)
    entry.state, entry.booking = State.BOOKED, booking
    entry.save(update_fields=["state", "booking", "updated_at"])
    record(actor=user, action="waitlist.accepted", target=entry, before=before, after=_entry_snapshot(entry), now=now)
    return booking


@transaction.atomic
def decline_offer(*, user, entry_id: int, now: dt.datetime | None = None) -> WaitlistEntry:
    now = now or timezone.now()
    entry = _own_entry(user, entry_id)
    if entry.state == State.DECLINED:
        return entry
    if entry.state != State.OFFERED:
        raise Conflict("no_offer", "There is no open offer on this entry.")
    return _close(entry, State.DECLINED, actor=user, action="waitlist.declined", now=now)


# --- the periodic job -----------------------------------------------------------------------------


def process_waitlists(*, now: dt.datetime | None = None) -> dict:
    """Lapse the offers not answered in time, end the entries whose window has passed, then offer free time
    on every instrument with someone waiting (which also catches time freed by a change to the instrument,
    such as downtime removed). Idempotent."""
    now = now or timezone.now()
    lapsed = 0
    for entry_id, instrument_id in (WaitlistEntry.objects.filter(state=State.OFFERED, offer_expires_at__lte=now)
                                    .values_list("id", "instrument_id")[:1000]):
        with transaction.atomic():
            locked_instrument(instrument_id, None)
            entry = WaitlistEntry.objects.select_for_update(of=("self",)).get(pk=entry_id)
            if entry.state == State.OFFERED and entry.offer_expires_at <= now:
                _close(entry, State.LAPSED, actor=None, action="waitlist.offer_lapsed", now=now)
                lapsed += 1
    ended = 0
    for entry in WaitlistEntry.objects.filter(state=State.WAITING, end__lte=now)[:1000]:
        with transaction.atomic():  # the state and its audit record together, or neither
            if WaitlistEntry.objects.filter(pk=entry.pk, state=State.WAITING).update(state=State.ENDED):
                record(actor=None, action="waitlist.ended", target=entry, before={"state": State.WAITING},
                       after={"state": State.ENDED}, now=now)
                ended += 1
    offered = 0
    waiting = (WaitlistEntry.objects.filter(state=State.WAITING, end__gt=now).values_list("instrument_id", flat=True)
               .distinct().order_by("instrument_id"))
    for instrument_id in list(waiting[:1000]):
        offered += len(offer_freed_time(instrument_id=instrument_id, now=now))
    return {"lapsed": lapsed, "ended": ended, "offered": offered}


def time_freed(instrument_id: int) -> None:
    """After a commit that freed time on an instrument: offer it, if anyone waits there (a task)."""
    if not WaitlistEntry.objects.filter(instrument_id=instrument_id, state=State.WAITING).exists():
        return
    from ..tasks import offer_freed_time as task

    try:
        task.apply_async((instrument_id,), retry=False)
    except Exception as error:  # noqa: BLE001 - broker down: the periodic job offers it within a minute
        logger.warning("could not enqueue the waiting-list offer for instrument %s (%s)", instrument_id, error)
