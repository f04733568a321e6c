"""Reads about bookings, shared by pages, the API and feeds."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Max, Min, Prefetch, Q, QuerySet
from django.utils import timezone

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab
from instrumentshare.accounts.services import token_digest
from instrumentshare.core.errors import Invalid, NotFound

from . import availability, ical
from .extensions import booking_parts
from .models import Booking, BookingSeries, FeedToken, Notification, WaitlistEntry


def bookings() -> QuerySet[Booking]:
    return Booking.objects.select_related("instrument", "instrument__lab", "user", "charged_lab")


def my_bookings(user) -> QuerySet[Booking]:
    return bookings().filter(user=user)


def lab_bookings(user, lab_id: int | None = None) -> QuerySet[Booking]:
    """The bookings on the instruments of the labs ``user`` manages, or of one of them. A lab they do
    not manage is "not found", as every object the caller may not see (never an empty list)."""
    lab_ids = people.managed_lab_ids(user)
    if lab_id is not None:
        if lab_id not in lab_ids:
            raise NotFound("not_found", "No such lab.")
        lab_ids = {lab_id}
    return bookings().filter(instrument__lab_id__in=lab_ids)


def pending_approvals(user) -> QuerySet[Booking]:
    return lab_bookings(user).filter(state=Booking.State.PENDING).order_by("start")


def with_part_facts(bookings: list[Booking]) -> list[Booking]:
    """Attach what higher apps know of each booking (billing: its account) as ``part_facts``, one query
    per contributing app for the whole list."""
    facts = {booking.pk: {} for booking in bookings}
    for part in booking_parts.contributions:
        for booking_id, values in part.facts(bookings).items():
            facts[booking_id].update(values)
    for booking in bookings:
        booking.part_facts = facts[booking.pk]
    return bookings


def cost_estimate(*, user, instrument, start: dt.datetime, end: dt.datetime) -> dict | None:
    """What a booking would cost, from the app that prices it (billing, through ``booking_parts``); None when
    no app prices bookings or no rate applies."""
    if start >= end:
        return None
    for part in booking_parts.contributions:
        estimate = getattr(part, "estimate", None)
        answer = estimate(user=user, instrument=instrument, start=start, end=end) if estimate else None
        if answer is not None:
            return answer
    return None


def my_waitlist(user) -> QuerySet[WaitlistEntry]:
    """The user's waiting-list entries, open ones (offered, waiting) first, then the newest."""
    from django.db.models import Case, IntegerField, Value, When

    order = Case(When(state=WaitlistEntry.State.OFFERED, then=Value(0)),
                 When(state=WaitlistEntry.State.WAITING, then=Value(1)), default=Value(2), output_field=IntegerField())
    return (WaitlistEntry.objects.filter(user=user).select_related("instrument", "instrument__policy")
            .annotate(open_first=order).order_by("open_first", "-created_at", "-id"))


def waitlist_holds(booking_ids: list[int]) -> set[int]:
    """Which of these held bookings hold time offered to someone on a waiting list (not the lab's own work)."""
    if not booking_ids:
        return set()
    return set(WaitlistEntry.objects.filter(hold_id__in=booking_ids).values_list("hold_id", flat=True))


def visible_bookings(user) -> QuerySet[Booking]:
    if people.is_platform_admin(user):
        return bookings()
    from django.db.models import Q

    return bookings().filter(Q(user=user) | Q(instrument__lab_id__in=people.managed_lab_ids(user)))


def checked_range(start: dt.datetime, end: dt.datetime, *, max_days: int | None = None) -> tuple:
    """A query range with an offset, start before end, no longer than the configured limit."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise Invalid("naive_datetime", f"{name} must carry a time zone offset.")
    if start >= end:
        raise Invalid("invalid_range", "start must be before end.")
    limit = max_days or settings.MAX_QUERY_RANGE_DAYS
    if end - start > dt.timedelta(days=limit):
        raise Invalid("range_too_long", f"Ask for at most {limit} days at a time.")
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def free_and_busy(instrument, start: dt.datetime, end: dt.datetime, *, now: dt.datetime | None = None):
    """Free time for a new booking, and busy time without personal data (active bookings and
    downtime), in [start, end): both from one read of the instrument's schedule (one statement over
    the opening windows on PostgreSQL)."""
    if availability.in_database():
        found = availability.database_free_and_busy(instrument, start, end, now=now)
        if found is not None:
            return found
    buffer = dt.timedelta(minutes=instrument.policy.buffer_minutes)
    schedule = availability.load_schedule(instrument, start, end, buffer=buffer)
    free = availability.free_intervals(instrument, start, end, now=now, schedule=schedule)
    return free, schedule.public_busy(start, end)


def availability_json(instrument, start: dt.datetime, end: dt.datetime, *,
                      now: dt.datetime | None = None) -> str | None:
    """The availability API's answer (``bookings.api.AvailabilityOut``) as PostgreSQL writes it, or None where
    only ``free_and_busy`` answers (SQLite, a range beyond the opening windows)."""
    if not availability.in_database():
        return None
    arrays = availability.database_free_and_busy_json(instrument, start, end, now=now)
    if arrays is None:
        return None
    head = {"instrument_id": instrument.pk, "time_zone": instrument.time_zone, "start": start, "end": end}
    return json.dumps(head, cls=DjangoJSONEncoder)[:-1] + f', "free": {arrays[0]}, "busy": {arrays[1]}}}'


# --- pages: the week calendars, "my bookings", the lab queue --------------------------------------


def visible_instrument(user, instrument_id: int | None):
    """The instrument with its policy if this user may see it, else None (the caller answers 404)."""
    if instrument_id is None:
        return None
    instrument = Instrument.objects.select_related("policy", "lab", "organization").filter(pk=instrument_id).first()
    if instrument is None or not catalog_queries.can_see(user, instrument):
        return None
    return instrument


@dataclass
class CalendarWeek:
    """What the instrument calendar shows for a range: free time, anonymous busy time, the viewer's bookings."""

    free: list[tuple[dt.datetime, dt.datetime]]
    busy: list[tuple[dt.datetime, dt.datetime]]
    mine: list[Booking]


def calendar_week(instrument, start: dt.datetime, end: dt.datetime, *, user,
                  now: dt.datetime | None = None) -> CalendarWeek:
    free, public = free_and_busy(instrument, start, end, now=now)
    mine: list[Booking] = []
    if people.is_authenticated(user):
        mine = list(my_bookings(user).filter(instrument=instrument, state__in=Booking.ACTIVE_STATES, start__lt=end,
                                             end__gt=start).order_by("start"))
    own = {(booking.start, booking.end) for booking in mine}
    busy = [interval for interval in public if interval not in own]
    return CalendarWeek(free=free, busy=busy, mine=mine)


def week_start(day: dt.date, zone) -> dt.datetime:
    """Monday 00:00 of the week holding ``day``, in ``zone``, as a UTC instant."""
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime.combine(monday, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def bookable_starts(instrument, intervals) -> list[dict]:
    """Free intervals as local times for the list beside the calendar: the start moved up onto the
    slot grid, a suggested end one shortest booking later, intervals too short for one left out."""
    policy = instrument.policy
    zone = instrument.zone
    step = dt.timedelta(minutes=policy.slot_minutes)
    length = dt.timedelta(minutes=max(policy.min_minutes, policy.slot_minutes))
    result = []
    for start, end in intervals:
        local = start.astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        steps = -(-(local - midnight) // step)  # ceiling: the first grid point at or after the start
        aligned = (midnight + steps * step).astimezone(zone)
        if aligned + length <= end:
            result.append({"start": aligned, "end": end.astimezone(zone), "suggested_end": aligned + length})
    return result


def opening_span(instrument) -> tuple[int, int]:
    """Earliest opening and latest closing minute of the weekly rules (the calendar's visible hours)."""
    span = instrument.opening_rules.aggregate(first=Min("open_minute"), last=Max("close_minute"))
    if span["first"] is None:
        return 0, 24 * 60
    return span["first"], span["last"]


def upcoming_bookings(user, *, now: dt.datetime) -> QuerySet[Booking]:
    """The user's bookings that have not ended yet, soonest first (cancelled ones too, marked as such)."""
    return my_bookings(user).filter(end__gt=now).select_related("instrument__policy").order_by("start", "id")


def past_bookings(user, *, now: dt.datetime) -> QuerySet[Booking]:
    return my_bookings(user).filter(end__lte=now).order_by("-start", "-id")


def active_feed_tokens(user, *, scope: str, lab_id: int | None = None) -> QuerySet:
    tokens = FeedToken.objects.filter(user=user, scope=scope, revoked_at__isnull=True)
    if lab_id is not None:
        tokens = tokens.filter(lab_id=lab_id)
    return tokens.order_by("-created_at")


def labs_of(user) -> QuerySet:
    """Labs the user belongs to: the ones a booking may be charged to."""
    return Lab.objects.filter(pk__in=people.member_lab_ids(user)).select_related("organization").order_by("pk")


def labs_managed_by(user) -> QuerySet:
    return Lab.objects.filter(pk__in=people.managed_lab_ids(user)).select_related("organization").order_by("code")


def overdue_notifications(*, minutes: int | None = None, now: dt.datetime | None = None) -> QuerySet[Notification]:
    """Outbox rows pending longer than OUTBOX_ALERT_MINUTES: the metric, the admin and the lab page alert on them."""
    minutes = settings.OUTBOX_ALERT_MINUTES if minutes is None else minutes
    return Notification.objects.filter(state=Notification.State.PENDING,
                                       created_at__lt=(now or timezone.now()) - dt.timedelta(minutes=minutes))


def undelivered_notifications(user, lab_id: int, *, now: dt.datetime | None = None) -> QuerySet[Notification]:
    """The lab's mail that has not gone out: failed rows and rows pending too long, oldest first; only
    for that lab's managers (anyone else gets none)."""
    if not people.is_lab_manager(user, lab_id):
        return Notification.objects.none()
    stuck = Q(state=Notification.State.FAILED) | Q(pk__in=overdue_notifications(now=now).values("pk"))
    return (Notification.objects.filter(stuck, booking__instrument__lab_id=lab_id)
            .select_related("booking__instrument", "booking__user").order_by("created_at", "id"))


def lab_calendar_bookings(user, lab_id: int, start: dt.datetime, end: dt.datetime) -> QuerySet[Booking]:
    """Bookings holding time on the lab's instruments in [start, end), for that lab's managers only."""
    return lab_bookings(user, lab_id).filter(state__in=Booking.ACTIVE_STATES, start__lt=end,
                                             end__gt=start).order_by("start", "id")


def lab_time_zone(lab) -> str:
    """The zone most of the lab's instruments stand in (the lab calendar is drawn in it)."""
    row = (Instrument.objects.filter(lab=lab).values("time_zone").annotate(n=Count("id")).order_by("-n", "time_zone")
           .first())
    return row["time_zone"] if row else settings.DEFAULT_INSTRUMENT_TIME_ZONE


# --- calendar feeds ---------------------------------------------------------------------------

FEED_PAST_DAYS = 90
FEED_FUTURE_DAYS = 400


def _window(now: dt.datetime):
    return now - dt.timedelta(days=FEED_PAST_DAYS), now + dt.timedelta(days=FEED_FUTURE_DAYS)


def private_feed(plain: str, *, now: dt.datetime | None = None) -> ical.Feed | None:
    """The feed behind a secret token, or None when the token is unknown or revoked."""
    token = FeedToken.objects.select_related("user").filter(digest=token_digest(plain or "")).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    start, end = _window(now or timezone.now())
    if token.scope == FeedToken.Scope.LAB:
        if not people.is_lab_manager(token.user, token.lab_id):
            return None  # no longer a manager: the link stops working
        rows = bookings().filter(instrument__lab_id=token.lab_id)
        name = "实验室预约 Lab bookings"
    else:
        rows = my_bookings(token.user)
        name = "我的仪器预约 My instrument bookings"
    # Plain rows, no model instances: the feed of a busy person has thousands of events.
    rows = rows.filter(start__lt=end, end__gt=start).order_by("start", "id").values_list(*ical.FEED_FIELDS)[:20000]
    return ical.feed(rows, name=name)


def public_instrument_feed(instrument, *, now: dt.datetime | None = None) -> ical.Feed:
    """Busy times of one instrument, with no personal data: the bookings that hold its time (cancelled and
    rejected ones free it, so they are not there)."""
    start, end = _window(now or timezone.now())
    rows = availability.near(Booking.objects.filter(state__in=Booking.ACTIVE_STATES, start__lt=end, end__gt=start),
                             instrument.pk, start, end).order_by("start", "id")
    rows = rows.values_list(*ical.PUBLIC_FEED_FIELDS)[:20000]
    return ical.feed(rows, name=f"{instrument.name_zh} 占用 Busy", private=False)


# --- after the lab cancelled: free slots to rebook -----------------------------------------------

REBOOK_SEARCH_DAYS = 14   # how far after the cancelled time the offers look
REBOOK_EQUIVALENTS = 3    # other instruments of the same category tried


@dataclass(frozen=True)
class RebookOffer:
    instrument: Instrument
    start: dt.datetime
    end: dt.datetime


def _nearest_start(instrument, intervals, target: dt.datetime, length: dt.timedelta) -> dt.datetime | None:
    """The start on the instrument's slot grid nearest ``target`` at which ``length`` fits in a free interval."""
    step = dt.timedelta(minutes=instrument.policy.slot_minutes)
    best = None
    for free_start, free_end in intervals:
        if free_end - free_start < length:
            continue
        wanted = min(max(target, free_start), free_end - length).astimezone(instrument.zone)
        midnight = wanted.replace(hour=0, minute=0, second=0, microsecond=0)
        aligned = (midnight + -(-(wanted - midnight) // step) * step).astimezone(dt.UTC)  # up onto the grid
        if aligned + length <= free_end and (best is None or abs(aligned - target) < abs(best - target)):
            best = aligned
    return best


def rebook_offers(booking: Booking, *, now: dt.datetime | None = None) -> list[RebookOffer]:
    """For a booking the lab cancelled: the free time of the same length nearest its time, on this
    instrument and on up to ``REBOOK_EQUIVALENTS`` others of the same category the booker may book."""
    now = now or timezone.now()
    length = booking.end - booking.start
    user = booking.user
    candidates = [booking.instrument] + list(
        catalog_queries.instruments().filter(category_id=booking.instrument.category_id)
        .exclude(pk=booking.instrument_id).filter(listing_state=Instrument.ListingState.PUBLISHED)
        .order_by("pk")[:REBOOK_EQUIVALENTS * 3])
    offers: list[RebookOffer] = []
    equivalents = 0
    for instrument in candidates:
        policy = getattr(instrument, "policy", None)
        if policy is None or not policy.min_minutes <= length.total_seconds() / 60 <= policy.max_minutes:
            continue
        if policy.mode == "samples" or not catalog_queries.may_book(user, instrument)[0]:
            continue
        if policy.qualification_required and not catalog_queries.is_qualified(user, instrument):
            continue
        if instrument.pk != booking.instrument_id:
            if equivalents >= REBOOK_EQUIVALENTS:
                break
            equivalents += 1
        window_start = max(now, booking.start - dt.timedelta(days=1))
        intervals = availability.free_intervals(instrument, window_start,
                                                booking.end + dt.timedelta(days=REBOOK_SEARCH_DAYS), now=now)
        start = _nearest_start(instrument, intervals, booking.start, length)
        if start is not None:
            offers.append(RebookOffer(instrument=instrument, start=start, end=start + length))
    return offers


def series_with_occurrences() -> QuerySet[BookingSeries]:
    """Booking series with their instrument and their occurrences in order (callers check who may see one:
    ``services.can_see_series``)."""
    return (BookingSeries.objects.select_related("instrument", "instrument__lab", "instrument__policy")
            .prefetch_related(Prefetch("occurrences", queryset=Booking.objects.order_by("start", "id"))))


def my_series(user) -> QuerySet[BookingSeries]:
    return BookingSeries.objects.filter(user=user).select_related("instrument").order_by("-created_at", "-id")
