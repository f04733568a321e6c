"""Recurring bookings: a series of occurrences, each an ordinary booking, checked and booked as a whole.

The rule is RFC 5545's RRULE (FREQ=DAILY or WEEKLY, INTERVAL, BYDAY, COUNT or UNTIL), expanded by
python-dateutil over the wall-clock time of the first occurrence in the instrument's zone: a 09:00 slot
stays at 09:00 across a daylight-saving change (in UTC it moves by the hour). A local time the change
skips is read with the offset before the gap, as RFC 5545 3.3.5 says (02:30 becomes 03:30).

Every occurrence goes through the single booking's own path (``lifecycle._create_booking``: who may book,
credit, grid, notice and horizon, opening hours, downtime, quota, approval, billing's account check) in
its own savepoint, all inside one transaction that holds the instrument, so the occurrences count toward
each other's weekly quota and nobody books between the check and the insert. A dry run rolls the whole
transaction back and answers what would happen to each occurrence; a real run books all of them, or, when
the caller says so, the ones that pass, and records which were left out and why.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from dateutil import rrule as dateutil_rrule
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

from ..models import Booking, BookingSeries
from .lifecycle import _booking_request, _create_booking, cancel_visible
from .rules import check_credit, check_may_book, conflict_for, locked_instrument

# A series books at most this many occurrences (a semester of weekly slots, twice over); more is a 422.
MAX_OCCURRENCES = 100
MAX_INTERVAL = 52
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
SCOPES = ("one", "following", "all")


@dataclass
class Occurrence:
    """One occurrence of a series and what became of it: booked (or bookable, in a dry run), or not and why."""

    start: dt.datetime
    end: dt.datetime
    code: str = ""                  # "" when it is (or would be) booked; else the rule's code (slot_taken, ...)
    detail: str = ""
    state: str = ""                 # the booking's state (pending when the lab must approve it)
    booking_id: int | None = None   # None in a dry run, and for an occurrence left out
    conflict: dict | None = None    # the interval that is taken, for slot_taken

    @property
    def ok(self) -> bool:
        return not self.code

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "ok": self.ok, "code": self.code,
                "detail": self.detail, "state": self.state, "booking_id": self.booking_id,
                "conflict": self.conflict}


@dataclass
class SeriesResult:
    series: BookingSeries | None       # None in a dry run
    rrule: str
    dry_run: bool
    time_zone: str = ""
    occurrences: list[Occurrence] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Occurrence]:
        return [occurrence for occurrence in self.occurrences if not occurrence.ok]


@dataclass(frozen=True)
class Rule:
    """What the caller asked for, checked: the RRULE's parts."""

    frequency: str
    interval: int
    weekdays: tuple[str, ...]
    count: int | None
    until: dt.date | None

    def text(self, zone) -> str:
        """The RRULE value (RFC 5545 3.3.10). UNTIL is the end of that day in the instrument's zone, in UTC,
        as the RFC requires when DTSTART carries a zone."""
        parts = [f"FREQ={self.frequency}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.weekdays:
            parts.append("BYDAY=" + ",".join(self.weekdays))
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        else:
            last = dt.datetime.combine(self.until, dt.time(23, 59, 59), tzinfo=zone).astimezone(dt.UTC)
            parts.append(f"UNTIL={last:%Y%m%dT%H%M%SZ}")
        return ";".join(parts)


def checked_rule(*, frequency: str, interval: int = 1, weekdays=(), count: int | None = None,
                 until: dt.date | None = None) -> Rule:
    frequency = (frequency or "").upper()
    if frequency not in BookingSeries.Frequency.values:
        raise Invalid("invalid_frequency", "frequency must be DAILY or WEEKLY.", extra={"field": "frequency"})
    if not 1 <= interval <= MAX_INTERVAL:
        raise Invalid("invalid_interval", f"interval must be between 1 and {MAX_INTERVAL}.",
                      extra={"field": "interval"})
    days = tuple(dict.fromkeys(day.upper() for day in weekdays or ()))
    if any(day not in WEEKDAYS for day in days):
        raise Invalid("invalid_weekdays", "weekdays are two-letter codes: MO TU WE TH FR SA SU.",
                      extra={"field": "weekdays"})
    if days and frequency != BookingSeries.Frequency.WEEKLY:
        raise Invalid("invalid_weekdays", "weekdays go with a weekly series only.", extra={"field": "weekdays"})
    if (count is None) == (until is None):
        raise Invalid("count_or_until", "Say either how many times (count) or until which day (until), not both.",
                      extra={"field": "count"})
    if count is not None and not 1 <= count <= MAX_OCCURRENCES:
        raise Invalid("too_many_occurrences", f"A series has 1 to {MAX_OCCURRENCES} occurrences.",
                      extra={"field": "count"})
    return Rule(frequency, interval, tuple(sorted(days, key=WEEKDAYS.index)), count, until)


def expand(rule: Rule, *, first_start: dt.datetime, duration: dt.timedelta,
           zone) -> list[tuple[dt.datetime, dt.datetime]]:
    """The occurrences (UTC start, UTC end) of ``rule`` from ``first_start``, at its wall-clock time in ``zone``.

    dateutil builds each occurrence from the local date and the first one's local time, so the wall-clock
    time is kept across a daylight-saving change; the length is kept in elapsed time. More than
    ``MAX_OCCURRENCES`` is a 422, found without expanding the rest.
    """
    local_first = first_start.astimezone(zone)
    if rule.weekdays and WEEKDAYS[local_first.weekday()] not in rule.weekdays:
        # RFC 5545 leaves a DTSTART outside its own rule undefined; we refuse it rather than guess.
        raise Invalid("first_not_in_rule", "The first occurrence must fall on one of the chosen weekdays.",
                      extra={"field": "weekdays"})
    if rule.until is not None and rule.until < local_first.date():
        raise Invalid("until_before_start", "until is before the first occurrence.", extra={"field": "until"})
    recurrence = dateutil_rrule.rrulestr(rule.text(zone), dtstart=local_first)
    starts = list(itertools.islice(recurrence, MAX_OCCURRENCES + 1))
    if len(starts) > MAX_OCCURRENCES:
        raise Invalid("too_many_occurrences", f"A series has at most {MAX_OCCURRENCES} occurrences; "
                                              "end it sooner.", extra={"field": "until"})
    # A local time that does not exist (a spring-forward gap) is read with the offset before it: fold=0.
    return [(start.astimezone(dt.UTC), start.astimezone(dt.UTC) + duration) for start in starts]


def _visible_instrument(user, instrument_id: int) -> Instrument:
    instrument = Instrument.objects.select_related("policy").filter(pk=instrument_id).first()
    if instrument is None or not catalog_queries.can_see(user, instrument):
        raise NotFound("not_found", "No such instrument.")
    return instrument


def create_series(*, user, instrument_id: int, start: dt.datetime, end: dt.datetime, purpose: str,
                  frequency: str, interval: int = 1, weekdays=(), count: int | None = None,
                  until: dt.date | None = None, lab_id: int | None = None, extras: dict | None = None,
                  dry_run: bool = False, book_available: bool = False,
                  now: dt.datetime | None = None) -> SeriesResult:
    """Book a series whose first occurrence is ``start``–``end``.

    ``dry_run``: check every occurrence, book nothing, answer each one's fate. Otherwise book them all, or
    (``book_available``) the ones that pass; if some fail and ``book_available`` is not set, nothing is
    booked and the answer is a 409 ``series_conflicts`` listing every occurrence.
    """
    now = now or timezone.now()
    start, end, purpose = _booking_request(start, end, purpose)
    rule = checked_rule(frequency=frequency, interval=interval, weekdays=weekdays, count=count, until=until)
    instrument = _visible_instrument(user, instrument_id)
    zone = instrument.zone
    times = expand(rule, first_start=start, duration=end - start, zone=zone)
    horizon = now + dt.timedelta(days=instrument.policy.horizon_days)
    if times[-1][1] > horizon:
        raise Invalid("beyond_horizon", f"The series goes past the booking horizon ({instrument.policy.horizon_days} "
                                        "days ahead): end it sooner.",
                      extra={"field": "until" if rule.count is None else "count"})
    result = SeriesResult(series=None, rrule=rule.text(zone), dry_run=dry_run, time_zone=instrument.time_zone)
    with transaction.atomic():
        _book(result, user=user, instrument=instrument, rule=rule, times=times, purpose=purpose, lab_id=lab_id,
              extras=extras or {}, dry_run=dry_run, book_available=book_available, now=now)
    if not dry_run and result.conflicts:
        booked = len(result.occurrences) - len(result.conflicts)
        if not book_available or not booked:
            raise Conflict("series_conflicts",
                           f"{len(result.conflicts)} of {len(result.occurrences)} occurrences cannot be booked; "
                           "nothing was booked. Book the others with book_available, or change the series.",
                           extra={"occurrences": [occurrence.as_dict() for occurrence in result.occurrences]})
    return result


def _book(result: SeriesResult, *, user, instrument, rule: Rule, times, purpose, lab_id, extras, dry_run,
          book_available, now) -> None:
    """Inside the caller's transaction: the series row, then each occurrence in its own savepoint."""
    locked = locked_instrument(instrument.pk, user)   # held to the commit: the series is checked and booked as one
    # What holds for every occurrence alike (may this person book here at all) refuses the series at once.
    check_may_book(user, locked)
    check_credit(user, locked)
    start, end = times[0]
    series = BookingSeries.objects.create(
        instrument=instrument, user=user, first_start=start, duration_minutes=int((end - start).total_seconds() // 60),
        time_zone=instrument.time_zone, frequency=rule.frequency, interval=rule.interval,
        weekdays=",".join(rule.weekdays), count=rule.count, until=rule.until, rrule=result.rrule,
        purpose=purpose[:2000])
    for start, end in times:
        result.occurrences.append(_occurrence(series, user=user, instrument=instrument, start=start, end=end,
                                              purpose=purpose, lab_id=lab_id, extras=extras, now=now))
    booked = [occurrence for occurrence in result.occurrences if occurrence.ok]
    if dry_run or not booked or (result.conflicts and not book_available):
        transaction.set_rollback(True)   # nothing of it stays: no rows, no audit, no invitations
        for occurrence in booked:
            occurrence.booking_id = None
        return
    series.skipped = [occurrence.as_dict() for occurrence in result.conflicts]
    series.save(update_fields=["skipped"])
    result.series = series
    record(actor=user, action="booking_series.created", target=series, now=now,
           after={"rrule": series.rrule, "instrument_id": instrument.pk, "time_zone": series.time_zone,
                  "booking_ids": [occurrence.booking_id for occurrence in booked],
                  "skipped": [{"start": item["start"], "code": item["code"]} for item in series.skipped]})


def _occurrence(series, *, user, instrument, start, end, purpose, lab_id, extras, now) -> Occurrence:
    occurrence = Occurrence(start=start, end=end)
    try:
        with transaction.atomic():
            booking = _create_booking(user, instrument.pk, start, end, purpose, lab_id, now, extras, series=series)
    except DomainError as error:
        occurrence.code, occurrence.detail = error.code, error.detail
        occurrence.conflict = error.extra.get("conflict")
    except IntegrityError as error:
        if "booking_no_overlap" not in str(error):
            raise
        # PostgreSQL's exclusion constraint refused the row (the savepoint is rolled back): say what is there.
        taken = conflict_for(instrument, start, end, dt.timedelta(minutes=instrument.policy.buffer_minutes), None)
        occurrence.code, occurrence.detail = "slot_taken", "That time is already booked."
        if taken is not None:
            occurrence.conflict = {"start": taken.start.isoformat(), "end": taken.blocked_until.isoformat()}
            if taken.user_id == user.pk:
                occurrence.conflict["own_booking_id"] = taken.pk
    else:
        occurrence.booking_id, occurrence.state = booking.pk, booking.state
    return occurrence


# --- reading and cancelling -----------------------------------------------------------------------


def can_see_series(user, series: BookingSeries) -> bool:
    return series.user_id == user.pk or people.is_lab_manager(user, series.instrument.lab_id) or \
        people.is_platform_admin(user)


def cancel_series(*, actor, series_id: int, scope: str, booking_id: int | None = None, reason: str = "",
                  now: dt.datetime | None = None) -> list[Booking]:
    """Cancel one occurrence, this one and the following, or all of a series, each under the single
    booking's rules (the booker's late cancellation costs credit per occurrence; the lab gives a reason).
    Occurrences that have started or are no longer open are left as they are. Returns those cancelled."""
    now = now or timezone.now()
    if scope not in SCOPES:
        raise Invalid("invalid_scope", "scope is one, following or all.", extra={"field": "scope"})
    with transaction.atomic():
        # The series row locked first: two cancellations of one series run one after the other.
        series = (BookingSeries.objects.select_for_update(of=("self",)).select_related("instrument")
                  .filter(pk=series_id).first())
        if series is None or not can_see_series(actor, series):
            raise NotFound("not_found", "No such series.")
        if actor.pk != series.user_id and not people.is_lab_manager(actor, series.instrument.lab_id):
            raise Forbidden("forbidden", "Only the booker or the instrument's lab may cancel.")
        ids = _ids_in_scope(series, scope, booking_id, now)
        cancelled = [cancel_visible(actor=actor, booking_id=pk, reason=reason, now=now) for pk in ids]
        if cancelled:
            record(actor=actor, action="booking_series.cancelled", target=series, now=now, reason=reason,
                   after={"scope": scope, "from_booking_id": booking_id,
                          "booking_ids": [booking.pk for booking in cancelled]})
    return cancelled


def _ids_in_scope(series: BookingSeries, scope: str, booking_id: int | None, now: dt.datetime) -> list[int]:
    occurrences = series.occurrences.all()
    if scope == "all":
        chosen = occurrences
    else:
        if booking_id is None:
            raise Invalid("booking_required", "Say which occurrence (booking_id).", extra={"field": "booking_id"})
        first = occurrences.filter(pk=booking_id).first()
        if first is None:
            raise NotFound("not_found", "No such occurrence in this series.")
        if scope == "one":
            return [first.pk]   # the single booking's rules answer if it cannot be cancelled
        chosen = occurrences.filter(start__gte=first.start)
    return list(chosen.filter(state__in=(Booking.State.PENDING, Booking.State.CONFIRMED), start__gt=now)
                .order_by("start").values_list("pk", flat=True))
