"""Demo usage: what happened at the instruments during the demo's past bookings, reconciled.

Sessions are logged for most past bookings (some overrun, some finish early, a few are no-shows)
and a few sessions are unbooked; then reconciliation runs, so billing has a month to close and the
lab manager has flags to review. Idempotent: a session is keyed by its instrument and logger ref.
"""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from bookings.demo import PAST_WEEKS, PURPOSE
from bookings.models import Booking
from instrumentshare.accounts.models import User

from .models import UsageSession
from .services.reconcile import reconcile


def _log(booking: Booking, rng: random.Random, no_show_budget: dict) -> None:
    roll = rng.random()
    if roll < 0.08 and no_show_budget.get(booking.user.username, 0) > 0:
        no_show_budget[booking.user.username] -= 1
        return
    minutes = booking.duration_minutes
    if roll < 0.18:
        minutes += rng.choice([30, 45, 60])  # overrun
    elif roll < 0.28:
        minutes -= rng.choice([45, 60])  # early finish
    UsageSession.objects.get_or_create(
        instrument=booking.instrument, external_ref=f"demo-{booking.pk}",
        defaults={"user": booking.user, "booking": None, "source": UsageSession.Source.LOGGER,
                  "start": booking.start + dt.timedelta(minutes=rng.choice([0, 5, 10])),
                  "end": booking.start + dt.timedelta(minutes=minutes), "samples": rng.randint(1, 12)},
    )


@transaction.atomic
def seed(stdout=None) -> dict:
    rng = random.Random(2026)  # noqa: S311 - demo data, reproducible on purpose
    now = timezone.now()
    past = list(Booking.objects.filter(purpose=PURPOSE, state=Booking.State.CONFIRMED,
                                       start__lt=now - dt.timedelta(hours=3))
                .exclude(usage_sessions__isnull=False).select_related("user", "instrument").order_by("start", "id"))
    # A few no-shows, few enough that no demo login loses the right to book (credit stays >= 60).
    no_show_budget = {"researcher2": 2, "labmanager2": 2}
    logged = UsageSession.objects.filter(external_ref__startswith="demo-").count()
    if not logged:
        for booking in past:
            _log(booking, rng, no_show_budget)
    instruments = list(dict.fromkeys(booking.instrument for booking in past))[:3]
    user = User.objects.filter(username="researcher").first()
    monday = now.date() - dt.timedelta(days=now.date().weekday())
    for index, instrument in enumerate(instruments if user else []):  # unbooked use, for the review queue
        day = monday - dt.timedelta(weeks=1) + dt.timedelta(days=index)
        start = dt.datetime.combine(day, dt.time(18), tzinfo=instrument.zone)   # after the booked slots
        UsageSession.objects.get_or_create(
            instrument=instrument, external_ref=f"demo-unbooked-{index}",
            defaults={"user": user, "source": UsageSession.Source.LOGGER, "start": start,
                      "end": start + dt.timedelta(minutes=50), "samples": 2},
        )
    summary = reconcile(since=now - dt.timedelta(weeks=PAST_WEEKS + 1), now=now)
    if stdout:
        stdout.write(f"demo usage: {UsageSession.objects.count()} sessions; reconciliation {summary.completed} "
                     f"completed, {summary.no_shows} no-shows, {summary.flags} flags")
    return {"sessions": UsageSession.objects.count(), "completed": summary.completed}
