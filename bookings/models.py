"""Bookings, their notifications (a transactional outbox), calendar feed tokens, and credit."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog.models import Instrument
from instrumentshare.accounts.models import Lab
from instrumentshare.core.time import SafeDateTimeField


class BookingSeries(models.Model):
    """A repeating booking: an RFC 5545 rule (``RRULE``) over wall-clock times in the instrument's zone.

    Each occurrence is an ordinary ``Booking`` row pointing here, checked, approved, invited, cancelled and
    billed on its own, so the exclusion constraint and every rule of a single booking hold for it too. The
    series keeps the rule it was booked with and which occurrences were left out (``skipped``) because
    they conflicted when it was booked.
    """

    class Frequency(models.TextChoices):
        DAILY = "DAILY", _("Daily")
        WEEKLY = "WEEKLY", _("Weekly")

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="booking_series")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="booking_series")
    # The first occurrence as asked for, and its length: the rule repeats its local wall-clock time.
    first_start = SafeDateTimeField(_("first start"))
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"))
    time_zone = models.CharField(_("time zone"), max_length=60)
    frequency = models.CharField(_("repeats"), max_length=8, choices=Frequency.choices)
    interval = models.PositiveSmallIntegerField(_("every"), default=1)
    weekdays = models.CharField(_("on weekdays"), max_length=20, blank=True, help_text=_("e.g. MO,WE"))
    count = models.PositiveSmallIntegerField(_("times"), null=True, blank=True)
    until = models.DateField(_("until"), null=True, blank=True)
    rrule = models.CharField(_("RRULE"), max_length=200)
    purpose = models.TextField(_("purpose"), max_length=2000)
    # The occurrences left out when the series was booked: [{"start", "end", "code", "detail"}, ...].
    skipped = models.JSONField(default=list, blank=True)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("booking series")
        verbose_name_plural = _("booking series")
        constraints = [
            models.CheckConstraint(condition=Q(count__isnull=False) | Q(until__isnull=False),
                                   name="series_count_or_until"),
            models.CheckConstraint(condition=Q(interval__gte=1), name="series_interval_positive"),
        ]

    def __str__(self) -> str:
        return f"series #{self.pk} {self.instrument_id} {self.rrule}"


class Booking(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", _("Awaiting approval")
        CONFIRMED = "confirmed", _("Confirmed")
        REJECTED = "rejected", _("Rejected")
        CANCELLED = "cancelled", _("Cancelled")
        COMPLETED = "completed", _("Completed")
        NO_SHOW = "no_show", _("No-show")
        # Time the lab holds for its own work (a sample request's analysis): it blocks the calendar like a
        # booking, under the same exclusion constraint, but nobody checks in, is billed or marked a no-show.
        HELD = "held", _("Held by the lab")

    # States that hold the instrument's time. Cancelled and rejected ones free it.
    ACTIVE_STATES = (State.PENDING, State.CONFIRMED, State.COMPLETED, State.NO_SHOW, State.HELD)

    # No single-column indexes where a (column, start) index in Meta serves the same lookups:
    # every extra index is written on each insert and state change (millions at city scale).
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="bookings", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings",
                             db_index=False)
    # The booker's lab the use is for (billing's cost centre default). The billing account a booking is
    # charged to is billing's own row (billing.BookingAccount): bookings knows nothing of billing.
    charged_lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="charged_bookings", null=True,
                                    db_index=False)
    start = SafeDateTimeField(_("start"))
    end = SafeDateTimeField(_("end"))
    # end + the instrument's buffer at booking time: the range the exclusion constraint protects.
    blocked_until = SafeDateTimeField()
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.CONFIRMED)
    purpose = models.TextField(_("purpose"), max_length=2000)
    is_internal = models.BooleanField(_("internal use"), default=True, help_text=_("Derived from organizations."))
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sequence = models.PositiveIntegerField(default=0, help_text=_("iCalendar SEQUENCE, raised on every change."))
    created_at = SafeDateTimeField(default=timezone.now, editable=False)
    updated_at = SafeDateTimeField(auto_now=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = SafeDateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")
    cancelled_at = SafeDateTimeField(null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True, max_length=2000)
    late_cancellation = models.BooleanField(_("late cancellation"), default=False)
    # A change to the instrument (downtime, new hours, rules) that the lab chose to keep this booking
    # through: shown to the booker until the booking ends (see catalog.impact).
    flag = models.TextField(_("lab notice"), blank=True, max_length=2000)
    flagged_at = SafeDateTimeField(null=True, blank=True)
    # The series this booking is an occurrence of (bookings/services/series.py), if any.
    series = models.ForeignKey(BookingSeries, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="occurrences", db_index=False)
    direction = models.CharField(_("service direction"), max_length=12, default="research",
                                 choices=[("research", _("Research")), ("development", _("Development")),
                                          ("teaching", _("Teaching")), ("other", _("Other"))])

    class Meta:
        ordering = ["start", "id"]
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="booking_start_before_end"),
            models.CheckConstraint(condition=Q(end__lte=models.F("blocked_until")), name="booking_blocked_after_end"),
            # On PostgreSQL an exclusion constraint (migration 0002) forbids overlapping active bookings.
        ]
        indexes = [
            models.Index(fields=["instrument", "start"]),
            # Window queries ask "start < B and blocked_until > A" of active bookings.
            models.Index(fields=["instrument", "blocked_until"], name="booking_active_until_idx",
                         condition=Q(state__in=["pending", "confirmed", "completed", "no_show", "held"])),
            models.Index(fields=["user", "start"]),
            models.Index(fields=["state", "start"]),
            models.Index(fields=["charged_lab", "start"]),
            # Only occurrences of a series are indexed: most bookings have none, and pay nothing for it.
            models.Index(fields=["series", "start"], name="booking_series_start_idx",
                         condition=Q(series__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.instrument_id} {self.start:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def duration_minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


class FreeDay(models.Model):
    """One instrument's availability for one UTC day, as the availability API writes it (PostgreSQL only).

    Derived data, kept by the database (``bookings.availability``, "stored days"): ``free`` holds the JSON
    items of the day's free time (its opening windows minus active bookings and downtime, widened by the
    buffer), cut at the day's bounds, with ``free_head``/``free_tail`` saying whether the first item starts
    at midnight and the last ends at the next, so that the reader can join an item across midnight;
    ``busy`` holds the items of the bookings and downtime that start that day. ``free`` NULL means
    "compute it again".

    Written only by the availability statement (a read fills the days it had to compute) and by triggers
    (migration 0012): a change to an active booking raises ``version`` and empties the days it touches
    (creating their row if need be); a change to the opening windows, downtime or the booking policy
    raises the instrument's ``FreeEpoch``, which makes every stored day of it stale at once. A read
    stores a day only if its version is still the one it read (so a booking committed while it computed
    is never lost) and tags it with the epoch it read (so a stale epoch is never served).
    """

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = SafeDateTimeField()
    version = models.BigIntegerField(default=0)
    epoch = models.BigIntegerField(default=0)
    free = models.TextField(null=True)
    busy = models.TextField(null=True)
    free_head = models.BooleanField(default=False)
    free_tail = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "day"], name="free_day_once")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.day:%Y-%m-%d} v{self.version}"


class FreeEpoch(models.Model):
    """Raised by the database whenever an instrument's opening windows, downtime or booking policy change:
    its stored days (``FreeDay``) of an older epoch are stale. No foreign key: the triggers raise it while an
    instrument's windows are deleted with it, in whatever order Django deletes them."""

    instrument_id = models.BigIntegerField(primary_key=True)
    epoch = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.instrument_id} epoch {self.epoch}"


class Notification(models.Model):
    """The outbox: a message to send, written in the same transaction as the change it announces.

    A task sends it after commit; a periodic job sends whatever is still pending (the broker was
    down, a worker died). A failed try is retried with exponential backoff up to a ceiling and never
    abandoned; a row that cannot be sent at all (no address) is ``failed`` and can be sent again from
    the admin. Delivery is at least once: a crash between the SMTP hand-off and the commit that marks
    the row can mail it again, with the same Message-ID (one per revision), so the client sees one.
    """

    class Kind(models.TextChoices):
        INVITATION = "invitation", _("Invitation")
        CANCELLATION = "cancellation", _("Cancellation")
        REMINDER = "reminder", _("Reminder")
        # A waiting-list offer: the booking is the offer's hold (state ``held``), see ``WaitlistEntry``.
        OFFER = "offer", _("Waiting-list offer")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=15, choices=Kind.choices)
    sequence = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = SafeDateTimeField(default=timezone.now)
    sent_at = SafeDateTimeField(null=True, blank=True)
    # After a failed try: not before this moment (exponential backoff to a ceiling, never given up).
    next_attempt_at = SafeDateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind", "sequence"], name="notification_once_per_revision")
        ]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.booking_id} seq {self.sequence} ({self.state})"


class FeedToken(models.Model):
    """A secret calendar feed URL. Separate from API tokens: it can only read one feed."""

    class Scope(models.TextChoices):
        MINE = "mine", _("My bookings")
        LAB = "lab", _("Lab bookings")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feed_tokens")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.MINE)
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    digest = models.CharField(max_length=64, unique=True)
    created_at = SafeDateTimeField(default=timezone.now)
    revoked_at = SafeDateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"feed {self.scope} of {self.user_id}"


class UserCredit(models.Model):
    """A user's booking credit: no-shows and late cancellations lower it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit")
    score = models.IntegerField(default=100)
    updated_at = SafeDateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.score}"


class CreditEvent(models.Model):
    """Why a score changed: one row per penalty or lift, unique per booking and reason."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_events")
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=20)  # no_show, late_cancel, ban_lifted, restored
    delta = models.IntegerField()
    created_at = SafeDateTimeField(default=timezone.now)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind"], condition=Q(booking__isnull=False),
                                    name="credit_event_once_per_booking")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d} for {self.user_id}"


class WaitlistEntry(models.Model):
    """A place in an instrument's waiting list: for one taken slot (``minutes`` equal to the window), or for
    any ``minutes`` inside the window [start, end) ("any 2 h this week").

    When matching time frees, the first entry in line (by ``created_at``) whose user may still book it is
    offered it: the slot is held for them by a booking in state ``held`` (``hold``) until
    ``offer_expires_at``, so nobody else takes it meanwhile; accepting books it through the normal create
    path (``bookings.services.waitlist``).
    """

    class State(models.TextChoices):
        WAITING = "waiting", _("Waiting")
        OFFERED = "offered", _("Offered")
        BOOKED = "booked", _("Booked")
        DECLINED = "declined", _("Declined")
        LAPSED = "lapsed", _("Offer expired")
        LEFT = "left", _("Left the list")
        ENDED = "ended", _("Time passed")

    ACTIVE_STATES = (State.WAITING, State.OFFERED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="waitlist_entries",
                             db_index=False)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="waitlist_entries",
                                   db_index=False)
    charged_lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    start = SafeDateTimeField(_("from"))
    end = SafeDateTimeField(_("until"))
    minutes = models.PositiveIntegerField(_("length in minutes"))
    purpose = models.TextField(_("purpose"), max_length=2000)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.WAITING)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)
    updated_at = SafeDateTimeField(auto_now=True)
    offer_start = SafeDateTimeField(null=True, blank=True)
    offer_end = SafeDateTimeField(null=True, blank=True)
    offer_expires_at = SafeDateTimeField(null=True, blank=True)
    hold = models.OneToOneField(Booking, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="waitlist_offer")
    booking = models.ForeignKey(Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("waiting-list entry")
        verbose_name_plural = _("waiting-list entries")
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="waitlist_start_before_end"),
            models.CheckConstraint(condition=Q(minutes__gt=0), name="waitlist_minutes_positive"),
            models.UniqueConstraint(fields=["user", "instrument", "start", "end", "minutes"],
                                    condition=Q(state__in=["waiting", "offered"]), name="waitlist_once_while_active"),
        ]
        indexes = [
            models.Index(fields=["instrument", "state", "created_at"]),
            models.Index(fields=["user", "state"]),
            models.Index(fields=["state", "offer_expires_at"]),
        ]

    def __str__(self) -> str:
        return f"waitlist #{self.pk} {self.instrument_id} {self.start:%Y-%m-%d %H:%M} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def is_exact(self) -> bool:
        """For one slot exactly, not any time of that length inside a window."""
        return self.minutes * 60 == int((self.end - self.start).total_seconds())
