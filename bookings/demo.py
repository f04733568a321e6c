"""Demo bookings: five past weeks of real-looking bookings and the coming weeks.

Past bookings are made through the services as if booked two days ahead (the usage demo then logs
what happened at the instrument and reconciles). Idempotent: a booking is keyed by its instrument
and start.
"""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from catalog.models import BookingPolicy, Instrument
from instrumentshare.accounts.models import User
from instrumentshare.core.errors import DomainError

from . import services
from .models import Booking, Notification

SLOTS = [(9, 2), (14, 2)]  # local start hour, hours
PAST_WEEKS = 5
PURPOSE = "样品表征 Sample characterization"


def _instruments() -> list[Instrument]:
    bookable = (Instrument.objects.filter(
        listing_state=Instrument.ListingState.PUBLISHED, share_mode=Instrument.ShareMode.EXTERNAL,
        status=Instrument.Status.NORMAL, policy__mode=BookingPolicy.Mode.SLOTS,
        policy__approval=BookingPolicy.Approval.NONE, policy__min_minutes__lte=120, policy__max_minutes__gte=120,
        opening_rules__weekday=0, opening_rules__open_minute__lte=9 * 60, opening_rules__close_minute__gte=16 * 60,
    ).select_related("policy", "lab").distinct().order_by("id"))
    preferred = [i for i in bookable if i.lab.code == "ouc-emc"]
    others = [i for i in bookable if i.lab.code != "ouc-emc"]
    return (preferred + others)[:12]


def _qualify(instruments: list[Instrument], users: list[User]) -> None:
    """Demo users are trained on the demo instruments that require it (granted by the lab's manager)."""
    from catalog import services as catalog_services
    from catalog.queries import is_qualified
    from instrumentshare.accounts.models import Membership

    for instrument in instruments:
        if not instrument.policy.qualification_required:
            continue
        manager = Membership.objects.filter(lab=instrument.lab, role=Membership.Role.MANAGER).first()
        for user in users:
            if manager and not is_qualified(user, instrument):
                catalog_services.grant_qualification(actor=manager.user, instrument_id=instrument.pk, user=user,
                                                     note="demo training")


def _local(day: dt.date, hour: int, instrument: Instrument) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=instrument.zone)


def _book(user, instrument, start, hours, now) -> Booking | None:
    existing = Booking.objects.filter(instrument=instrument, start=start).first()
    if existing:
        return None
    try:
        return services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                       end=start + dt.timedelta(hours=hours), now=now,
                                       purpose=PURPOSE)
    except DomainError:
        return None  # a rule of this instrument says no (quota, approval…): skip it in the demo


def _pending_for_approval(users: list[User], monday: dt.date, now: dt.datetime) -> int:
    """A company's request waiting in the OUC electron microscopy center's approval queue."""
    company = next((u for u in users if u.username == "company"), None)
    instrument = (Instrument.objects.filter(lab__code="ouc-emc", policy__approval__in=("all", "external"),
                                            listing_state=Instrument.ListingState.PUBLISHED,
                                            status=Instrument.Status.NORMAL,
                                            policy__min_minutes__lte=120, policy__max_minutes__gte=120)
                  .select_related("policy", "lab").order_by("id").first())
    if company is None or instrument is None:
        return 0
    _qualify([instrument], [company])
    day = monday + dt.timedelta(weeks=1, days=2)
    return 1 if _book(company, instrument, _local(day, 14, instrument), 2, now) else 0


@transaction.atomic
def seed(stdout=None) -> dict:
    rng = random.Random(2026)  # noqa: S311 - demo data, reproducible on purpose
    now = timezone.now()
    users = list(User.objects.filter(username__in=["researcher", "researcher2", "company", "labmanager2"]))
    instruments = _instruments()
    if not users or not instruments:
        if stdout:
            stdout.write("demo bookings: no bookable demo instruments yet")
        return {}
    _qualify(instruments, users)
    today = now.date()
    monday = today - dt.timedelta(days=today.weekday())
    created_past = []
    for instrument in instruments:
        for week in range(PAST_WEEKS, 0, -1):
            for weekday in range(5):
                day = monday - dt.timedelta(weeks=week) + dt.timedelta(days=weekday)
                for hour, hours in SLOTS:
                    if rng.random() < 0.35:
                        continue
                    start = _local(day, hour, instrument)
                    if start >= now - dt.timedelta(hours=3):
                        continue
                    booking = _book(rng.choice(users), instrument, start, hours, start - dt.timedelta(days=2))
                    if booking:
                        created_past.append(booking)
    # No e-mail for history: these invitations would have gone out weeks ago.
    Notification.objects.filter(booking__in=created_past).update(state=Notification.State.SENT, sent_at=now)
    upcoming = 0
    researcher = next((u for u in users if u.username == "researcher"), users[0])
    for offset, instrument in enumerate(instruments[:4]):
        day = monday + dt.timedelta(weeks=1, days=offset)
        if _book(researcher, instrument, _local(day, 9, instrument), 2, now):
            upcoming += 1
    upcoming += _pending_for_approval(users, monday, now)
    if stdout:
        stdout.write(f"demo bookings: {len(created_past)} past, {upcoming} upcoming")
    return {"past": len(created_past), "upcoming": upcoming}
