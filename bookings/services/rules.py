"""The rules a booking must pass: who may book, credit, the slot grid, notice and horizon, opening hours,
downtime, quotas, and no overlap. Each raises a ``DomainError`` naming what is wrong."""

from __future__ import annotations

import datetime as dt
import functools

from django.conf import settings
from django.db import connection
from django.db.models import F, Sum

from catalog import queries as catalog_queries
from catalog.models import BookingPolicy, Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab
from instrumentshare.core import rows
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound

from .. import availability
from ..models import Booking
from .credit import credit_score


def check_credit(user, instrument: Instrument | None = None) -> None:
    """The user's credit allows booking. ``instrument`` from ``locked_instrument`` carries the score it read
    with the lock (no second round trip)."""
    read = getattr(instrument, "booker_credit", None)
    if read is not None and read[0] == user.pk:
        score = settings.CREDIT_INITIAL_SCORE if read[1] is None else read[1]
    else:
        score = credit_score(user)
    if score < settings.CREDIT_MIN_TO_BOOK:
        raise Forbidden("credit_too_low",
                        f"Your booking credit is {score}, below {settings.CREDIT_MIN_TO_BOOK}: "
                        "ask the platform administrator to lift the ban.")


def check_grid(instrument: Instrument, policy: BookingPolicy, start: dt.datetime, end: dt.datetime) -> None:
    minutes = (end - start).total_seconds() / 60
    if minutes < policy.min_minutes:
        raise Invalid("too_short", f"Bookings last at least {policy.min_minutes} minutes.")
    if minutes > policy.max_minutes:
        raise Invalid("too_long", f"Bookings last at most {policy.max_minutes} minutes.")
    zone = instrument.zone
    for name, value in (("start", start), ("end", end)):
        local = value.astimezone(zone)
        if local.second or local.microsecond or (local.hour * 60 + local.minute) % policy.slot_minutes:
            raise Invalid("off_grid", f"The {name} must fall on the {policy.slot_minutes}-minute grid "
                                      f"of the instrument's time zone ({instrument.time_zone}).")


def check_window(policy: BookingPolicy, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> None:
    if start < now + dt.timedelta(minutes=policy.min_notice_minutes):
        raise Invalid("too_soon", f"Book at least {policy.min_notice_minutes} minutes ahead.")
    if end > now + dt.timedelta(days=policy.horizon_days):
        raise Invalid("beyond_horizon", f"Bookings open {policy.horizon_days} days ahead at most.")


def conflict_for(instrument: Instrument, start: dt.datetime, end: dt.datetime, buffer: dt.timedelta,
                  exclude_booking_id: int | None) -> Booking | None:
    conflicts = availability.near(Booking.objects.filter(
        state__in=Booking.ACTIVE_STATES, start__lt=end + buffer, blocked_until__gt=start,
    ), instrument.pk, start, end + buffer)
    if exclude_booking_id:
        conflicts = conflicts.exclude(pk=exclude_booking_id)
    return conflicts.order_by("start").first()


def raise_conflict(booking: Booking | None, user_id: int | None = None) -> None:
    """409 naming the conflicting interval; when it is the caller's own booking, say so (and which)."""
    extra = {}
    if booking is not None:
        extra = {"conflict": {"start": booking.start.isoformat(), "end": booking.blocked_until.isoformat()}}
        if user_id is not None and booking.user_id == user_id:
            extra["conflict"]["own_booking_id"] = booking.pk
            raise Conflict("slot_taken", f"You already have booking #{booking.pk} at that time.", extra=extra)
    raise Conflict("slot_taken", "That time is already booked.", extra=extra)


def check_free(instrument: Instrument, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                exclude_booking_id: int | None = None, user_id: int | None = None) -> None:
    buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
    # Opening hours, exceptions and downtime in one statement. On PostgreSQL the exclusion constraint
    # refuses an overlapping row on insert, and the caller turns that into the same 409 naming the
    # conflicting interval, so the bookings are not read first; elsewhere they are, under the write lock.
    guarded = constraint_guards_overlap()
    schedule = availability.load_schedule(instrument, start, end, buffer=buffer, bookings=not guarded,
                                          exclude_booking_id=exclude_booking_id)
    opening = availability.opening_intervals(instrument, start, end, rules=schedule.rules,
                                             exceptions=schedule.exceptions)
    if not any(a <= start and end <= b for a, b in opening):
        raise Invalid("closed", "The instrument is not open for the whole of that time.")
    if schedule.downtime:
        reason = instrument.downtimes.filter(start__lt=end, end__gt=start).values_list("reason", flat=True).first()
        raise Invalid("downtime", f"The instrument is out of service then: {reason}")
    if schedule.bookings:
        raise_conflict(conflict_for(instrument, start, end, buffer, exclude_booking_id), user_id)


def constraint_guards_overlap() -> bool:
    """Whether the database itself refuses overlapping active bookings (the booking_no_overlap constraint)."""
    return connection.vendor == "postgresql"


def week_bounds(instrument: Instrument, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    local = start.astimezone(instrument.zone)
    monday = (local - dt.timedelta(days=local.weekday())).date()
    first = dt.datetime.combine(monday, dt.time(), tzinfo=instrument.zone)
    return first.astimezone(dt.UTC), (first + dt.timedelta(days=7)).astimezone(dt.UTC)


def booked_minutes(queryset) -> int:
    total = queryset.aggregate(total=Sum(F("end") - F("start")))["total"]
    return int(total.total_seconds() // 60) if total else 0


def check_quota(instrument, policy, user, lab_id, start, end, exclude_booking_id=None) -> None:
    if not policy.max_hours_per_user_week and not policy.max_hours_per_lab_week:
        return
    week_start, week_end = week_bounds(instrument, start)
    week = Booking.objects.filter(instrument=instrument, state__in=(Booking.State.PENDING, Booking.State.CONFIRMED),
                                  start__gte=week_start, start__lt=week_end).exclude(pk=exclude_booking_id)
    wanted = int((end - start).total_seconds() // 60)
    if policy.max_hours_per_user_week and booked_minutes(week.filter(user=user)) + wanted > \
            policy.max_hours_per_user_week * 60:
        raise Forbidden("quota_exceeded", f"You may book {policy.max_hours_per_user_week} h a week on this instrument.")
    if lab_id is not None and policy.max_hours_per_lab_week and \
            booked_minutes(week.filter(charged_lab_id=lab_id)) + wanted > \
            policy.max_hours_per_lab_week * 60:
        raise Forbidden("quota_exceeded", f"Your lab may book {policy.max_hours_per_lab_week} h a week here.")


def charged_lab_id_for(user, lab_id: int | None) -> int | None:
    lab_ids = people.member_lab_ids(user)
    if lab_id is not None:
        if lab_id not in lab_ids:
            raise Forbidden("account_not_allowed", "You may only charge a lab you belong to.")
        return lab_id
    if lab_ids:
        return min(lab_ids)  # the first lab the user is in, as billing's default account
    return None  # an external person with no lab: billed to their organization later


def locked_instrument(instrument_id: int, user) -> Instrument:
    """The instrument with its policy and lab, locked to the end of the caller's transaction, and in the
    same statement what the booking checks read about the user (their memberships and credit score),
    kept on the user for this request. PostgreSQL locks the instrument row (``FOR NO KEY UPDATE``: bookings
    may still reference it); SQLite's write transaction already runs one writer at a time. ``user`` None:
    the system itself (the waiting lists' jobs), which sees every instrument and reads no one's facts."""
    user_id = getattr(user, "pk", None)
    row = rows.one(_locked_instrument_sql(), [user_id, user_id, instrument_id])
    if row is None:
        raise NotFound("not_found", "No such instrument.")
    instrument, policy, lab = rows.instances(row, Instrument, BookingPolicy, Lab, offset=2)
    Instrument._meta.get_field("policy").set_cached_value(instrument, policy)
    Instrument._meta.get_field("lab").set_cached_value(instrument, lab)
    if user is None:
        return instrument
    if user_id is not None:
        people.remember_memberships(user, people.parse_memberships(row[0]))
        instrument.booker_credit = (user_id, row[1])
    if not catalog_queries.can_see(user, instrument):
        raise NotFound("not_found", "No such instrument.")
    return instrument


@functools.cache
def _locked_instrument_sql() -> str:
    lock = " FOR NO KEY UPDATE OF i" if connection.vendor == "postgresql" else ""
    return (f"SELECT {people.memberships_sql()}, "  # noqa: S608 - names from the models; values are parameters
            "(SELECT c.score FROM bookings_usercredit c WHERE c.user_id = %s ORDER BY c.id LIMIT 1), "
            f"{rows.columns(Instrument, 'i')}, {rows.columns(BookingPolicy, 'p')}, {rows.columns(Lab, 'l')} "
            "FROM catalog_instrument i JOIN accounts_lab l ON l.id = i.lab_id "
            f"LEFT JOIN catalog_bookingpolicy p ON p.instrument_id = i.id WHERE i.id = %s{lock}")


def check_may_book(user, instrument: Instrument) -> None:
    allowed, reason = catalog_queries.may_book(user, instrument)
    if not allowed:
        messages = {
            "not_published": "This instrument is not open for booking yet.",
            "out_of_service": "This instrument is out of service.",
            "internal_only": "This instrument is shared only inside its organization.",
            "not_shared": "This instrument is not shared.",
        }
        raise Forbidden(reason, messages.get(reason, "You may not book this instrument."))
    if instrument.policy.mode == BookingPolicy.Mode.SAMPLES:
        raise Invalid("samples_only", "This instrument takes sample submissions only, not time bookings.")
    if instrument.policy.qualification_required and not catalog_queries.is_qualified(user, instrument):
        raise Forbidden("not_qualified", "You need training on this instrument first; request it on its page.")


def needs_approval(policy: BookingPolicy, internal: bool) -> bool:
    return policy.approval == BookingPolicy.Approval.ALL or (
        policy.approval == BookingPolicy.Approval.EXTERNAL and not internal
    )
