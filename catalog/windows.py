"""Opening hours materialized as UTC ranges (``OpeningWindow``), so PostgreSQL can compute free time.

The windows of an instrument cover [now − 1 day, now + its booking horizon + ``MARGIN``) as of their
last refresh (``OpeningWindowCover``). The services that change opening hours, exceptions, the
booking policy or the zone refresh the instrument's windows inside the change's transaction; the
daily task (``catalog.tasks.refresh_opening_windows_task``) refreshes every instrument's, which moves
the horizon on and repairs anything written around the services (bulk loads). ``MARGIN`` lets a few
missed daily runs pass unnoticed; a read beyond the cover computes opening hours in Python instead
(``bookings.availability``), so a stale cover is slower, never wrong.

The windows come from ``catalog.hours.opening_intervals``, the one definition of opening hours
(weekly rules in the instrument's zone, exception days, Chinese public holidays if the policy says so).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from instrumentshare.core.bulk import insert_rows

from .hours import opening_intervals
from .models import Instrument, OpeningException, OpeningRule, OpeningWindow, OpeningWindowCover

MARGIN = dt.timedelta(days=8)
PAST = dt.timedelta(days=1)
BATCH = 500


def cover_of(instrument: Instrument, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return now - PAST, now + dt.timedelta(days=instrument.policy.horizon_days) + MARGIN


def refresh_opening_windows(*, instrument_ids: list[int] | None = None, now: dt.datetime | None = None) -> int:
    """Recompute the windows of these instruments (every instrument when None); the number written.

    Each batch locks its instruments (in id order, as the services lock one), so a change to the
    hours committed meanwhile is read, never overwritten with the hours as they were.
    """
    now = now or timezone.now()
    queryset = Instrument.objects.all() if instrument_ids is None else Instrument.objects.filter(pk__in=instrument_ids)
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    written = 0
    for first in range(0, len(ids), BATCH):
        written += _refresh_batch(ids[first:first + BATCH], now)
    return written


@transaction.atomic
def _refresh_batch(ids: list[int], now: dt.datetime) -> int:
    locked = list(Instrument.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk",
                                                                                                        flat=True))
    instruments = [instrument for instrument in Instrument.objects.filter(pk__in=locked).select_related("policy")
                   if _policy(instrument) is not None]
    rules, exceptions = defaultdict(list), defaultdict(list)
    for rule in OpeningRule.objects.filter(instrument_id__in=locked):
        rules[rule.instrument_id].append(rule)
    first_day = (now - PAST - dt.timedelta(days=2)).date()
    for exception in OpeningException.objects.filter(instrument_id__in=locked, date__gte=first_day):
        exceptions[exception.instrument_id].append(exception)
    windows, covers = [], []
    for instrument in instruments:
        start, end = cover_of(instrument, now)
        windows += [(instrument.pk, a, b) for a, b in opening_intervals(
            instrument, start, end, rules=rules[instrument.pk], exceptions=exceptions[instrument.pk])]
        covers.append((instrument.pk, start, end, now))
    OpeningWindow.objects.filter(instrument_id__in=locked).delete()
    OpeningWindowCover.objects.filter(instrument_id__in=locked).delete()
    insert_rows(OpeningWindow, ["instrument_id", "start", "end"], windows)
    insert_rows(OpeningWindowCover, ["instrument_id", "start", "end", "refreshed_at"], covers)
    return len(windows)


def _policy(instrument: Instrument):
    """An instrument without a policy (only a bulk load makes one) has no horizon: no windows, Python reads it."""
    return getattr(instrument, "policy", None)
