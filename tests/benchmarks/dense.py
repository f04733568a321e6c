"""The dense calendars of ``--scenario dense``: instruments booked a 20-minute slot every 40 minutes, around the clock.

What a busy core facility's shared SEM looks like: 1,008 bookings in four weeks per instrument.
The instruments are copies of one bookable instrument of the small city generated before
(published, shared externally, slots, no approval or qualification, priced by the same rate
cards), open 24 hours on every weekday, on a 20-minute grid with no buffer, in Asia/Shanghai (a
whole-hour offset, so the UTC grid is the local grid). Each gets a district of its own
(``DISTRICT``) so that the search can be narrowed to them. The first one (the feed instrument)
keeps the same rhythm beyond the four weeks until it holds ``feed_events`` bookings, so its
public iCalendar feed has 5,000 events. The second one (the history instrument) also has ``history_days`` of
completed bookings in the same rhythm before the timeline (a year: 13,104), as a facility that has been
busy for a while has: reading its next four weeks must not cost its past.

Bookings go in through ``instrumentshare.core.bulk.insert_rows`` (COPY on PostgreSQL, under the
exclusion constraint), every column given or defaulted as ``Booking()`` would, a uid each.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

DISTRICT = "高密度 dense"
ZONE = "Asia/Shanghai"
BOOKING_MINUTES = 20
PERIOD_MINUTES = 40
PURPOSE = "dense calendar"
HISTORY_PURPOSE = "dense calendar, history"


def _template():
    from catalog.models import Instrument

    template = (Instrument.objects.filter(
        listing_state="published", share_mode="external", status="normal", policy__mode="slots",
        policy__qualification_required=False, policy__approval="none").exclude(district=DISTRICT)
        .order_by("id").first())
    if template is None:
        raise RuntimeError("the city has no published, externally shared slot instrument to copy")
    return template


def bookers(count: int, seed: int) -> list[tuple[int, int]]:
    """(user id, lab id) of people with a lab, so each booking has a lab to charge."""
    from instrumentshare.accounts.models import Membership

    pairs = sorted(set(Membership.objects.filter(user__is_active=True, user__is_platform_admin=False)
                       .values_list("user_id", "lab_id")))
    seen, unique = set(), []
    for user_id, lab_id in pairs:
        if user_id not in seen:
            seen.add(user_id)
            unique.append((user_id, lab_id))
    return random.Random(seed).sample(unique, min(count, len(unique)))


def build(instruments: int, *, days: int = 28, feed_events: int = 5000, history_days: int = 364, seed: int = 1,
          start: dt.datetime | None = None) -> dict:
    """Add ``instruments`` dense instruments and their bookings from ``start`` (default: this hour, UTC)."""
    import time

    from django.db import connection, transaction

    from bookings.models import Booking
    from catalog.models import BookingPolicy, Instrument, OpeningRule
    from catalog.windows import refresh_opening_windows
    from instrumentshare.core.bulk import insert_rows

    started = time.monotonic()
    start = start or dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    template = _template()
    people = bookers(50, seed)
    per_instrument = days * 24 * 60 // PERIOD_MINUTES
    with transaction.atomic():
        copies = []
        for n in range(instruments):
            copy = Instrument.objects.get(pk=template.pk)
            copy.pk = copy.id = None
            copy._state.adding = True
            copy.name_zh, copy.name_en = f"高密度扫描电镜 {n + 1:03d}", f"Dense SEM {n + 1:03d}"
            copy.asset_number, copy.district, copy.time_zone = f"DENSE-{seed}-{n + 1:05d}", DISTRICT, ZONE
            copies.append(copy)
        copies = Instrument.objects.bulk_create(copies)
        ids = [copy.pk for copy in copies]
        BookingPolicy.objects.bulk_create([BookingPolicy(
            instrument_id=pk, mode="slots", slot_minutes=BOOKING_MINUTES, min_minutes=BOOKING_MINUTES,
            max_minutes=4 * 60, min_notice_minutes=60, horizon_days=60, buffer_minutes=0, approval="none",
            qualification_required=False, closed_on_public_holidays=False) for pk in ids])
        OpeningRule.objects.bulk_create([OpeningRule(instrument_id=pk, weekday=day, open_minute=0, close_minute=1440)
                                         for pk in ids for day in range(7)])
        _copy_rate_cards(template.pk, ids)
        refresh_opening_windows(instrument_ids=ids)  # as the services would (catalog.windows)
        columns = ["instrument_id", "user_id", "charged_lab_id", "start", "end", "blocked_until", "state", "purpose",
                   "uid"]
        period, length = dt.timedelta(minutes=PERIOD_MINUTES), dt.timedelta(minutes=BOOKING_MINUTES)

        def rows():
            for index, pk in enumerate(ids):
                count = max(per_instrument, feed_events) if index == 0 else per_instrument
                for k in range(count):
                    user_id, lab_id = people[(index + k) % len(people)]
                    begin = start + k * period
                    yield (pk, user_id, lab_id, begin, begin + length, begin + length, "confirmed", PURPOSE,
                           uuid.uuid4())
            if len(ids) > 1:
                for k in range(1, history_days * 24 * 60 // PERIOD_MINUTES + 1):
                    user_id, lab_id = people[k % len(people)]
                    begin = start - k * period
                    yield (ids[1], user_id, lab_id, begin, begin + length, begin + length, "completed",
                           HISTORY_PURPOSE, uuid.uuid4())

        written = insert_rows(Booking, columns, rows())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # What autovacuum would have done by the time a real calendar is this full: the free-time
            # statements plan on these tables' statistics.
            for table in ("bookings_booking", "catalog_instrument", "catalog_openingwindow",
                          "catalog_openingwindowcover", "catalog_downtime"):
                cursor.execute(f"ANALYZE {table}")
    return {"instruments": len(ids), "bookings": written, "bookings_per_instrument": per_instrument, "days": days,
            "feed_instrument": ids[0] if ids else None, "feed_events": max(per_instrument, feed_events),
            "history_instrument": ids[1] if len(ids) > 1 else None, "history_days": history_days,
            "start": start.isoformat(), "template": template.pk, "seconds": round(time.monotonic() - started, 1)}


def _copy_rate_cards(template_id: int, ids: list[int]) -> None:
    """The template's rate cards and their rates, for each copy (priced like the instrument copied)."""
    from billing.models import Rate, RateCard

    for card in RateCard.objects.filter(instrument_id=template_id).prefetch_related("rates"):
        rates = list(card.rates.all())
        copies = []
        for pk in ids:
            copy = RateCard.objects.get(pk=card.pk)
            copy.pk = copy.id = None
            copy._state.adding = True
            copy.instrument_id = pk
            copies.append(copy)
        copies = RateCard.objects.bulk_create(copies)
        new_rates = []
        for copy in copies:
            for rate in rates:
                new_rates.append(Rate(card_id=copy.pk, user_class=rate.user_class, unit=rate.unit, price=rate.price))
        Rate.objects.bulk_create(new_rates)


def instrument_ids() -> list[int]:
    from catalog.models import Instrument

    return list(Instrument.objects.filter(district=DISTRICT).order_by("id").values_list("id", flat=True))


def timeline_start(ids: list[int]) -> dt.datetime:
    from django.db.models import Min

    from bookings.models import Booking

    return Booking.objects.filter(instrument_id__in=ids, purpose=PURPOSE).aggregate(first=Min("start"))["first"]


def free_gaps(start: dt.datetime, first_day: int, last_day: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """The 20-minute gaps between the dense bookings from day ``first_day`` to ``last_day`` of the timeline."""
    period, length = dt.timedelta(minutes=PERIOD_MINUTES), dt.timedelta(minutes=BOOKING_MINUTES)
    first = first_day * 24 * 60 // PERIOD_MINUTES
    last = last_day * 24 * 60 // PERIOD_MINUTES
    return [(start + k * period + length, start + (k + 1) * period) for k in range(first, last)]
