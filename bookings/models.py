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


class Booking(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", _("Awaiting approval")
        CONFIRMED = "confirmed", _("Confirmed")
        REJECTED = "rejected", _("Rejected")
        CANCELLED = "cancelled", _("Cancelled")
        COMPLETED = "completed", _("Completed")
        NO_SHOW = "no_show", _("No-show")

    # States that hold the instrument's time. Cancelled and rejected ones free it.
    ACTIVE_STATES = (State.PENDING, State.CONFIRMED, State.COMPLETED, State.NO_SHOW)

    # No single-column indexes where a (column, start) index in Meta serves the same lookups:
    # every extra index is written on each insert and state change (millions at city scale).
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="bookings", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings",
                             db_index=False)
    # Until billing accounts exist, a booking is charged to the booker's lab.
    charged_lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="charged_bookings", null=True,
                                    db_index=False)
    # The billing account named at booking time, checked by billing's rule (see ACCOUNT_RESOLVERS).
    account = models.ForeignKey("billing.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="bookings")
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    # end + the instrument's buffer at booking time: the range the exclusion constraint protects.
    blocked_until = models.DateTimeField()
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.CONFIRMED)
    purpose = models.TextField(_("purpose"), max_length=2000)
    is_internal = models.BooleanField(_("internal use"), default=True, help_text=_("Derived from organizations."))
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sequence = models.PositiveIntegerField(default=0, help_text=_("iCalendar SEQUENCE, raised on every change."))
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True, max_length=2000)
    late_cancellation = models.BooleanField(_("late cancellation"), default=False)
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
                         condition=Q(state__in=["pending", "confirmed", "completed", "no_show"])),
            models.Index(fields=["user", "start"]),
            models.Index(fields=["state", "start"]),
            models.Index(fields=["charged_lab", "start"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.instrument_id} {self.start:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def duration_minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


class Notification(models.Model):
    """The outbox: a message to send, written in the same transaction as the change it announces.

    A task sends it after commit; a periodic job sends whatever is still pending (the broker was
    down, a worker died). The unique key means one revision is mailed once.
    """

    class Kind(models.TextChoices):
        INVITATION = "invitation", _("Invitation")
        CANCELLATION = "cancellation", _("Cancellation")
        REMINDER = "reminder", _("Reminder")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=15, choices=Kind.choices)
    sequence = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

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
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"feed {self.scope} of {self.user_id}"


class UserCredit(models.Model):
    """A user's booking credit: no-shows and late cancellations lower it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit")
    score = models.IntegerField(default=100)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.score}"


class CreditEvent(models.Model):
    """Why a score changed: one row per penalty or lift, unique per booking and reason."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_events")
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=20)  # no_show, late_cancel, ban_lifted, restored
    delta = models.IntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind"], condition=Q(booking__isnull=False),
                                    name="credit_event_once_per_booking")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d} for {self.user_id}"


# --- usage: what really happened at the instrument ----------------------------------------------


class LoggerToken(models.Model):
    """A per-instrument secret for the logger program on the instrument PC: it can only report usage."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="logger_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"logger {self.name} ({self.prefix}…) of {self.instrument_id}"


class UsageSession(models.Model):
    class Source(models.TextChoices):
        LOGGER = "logger", _("Instrument logger")
        CHECKIN = "checkin", _("Check-in / check-out")
        IMPORT = "import", _("Logbook import")
        MANUAL = "manual", _("Manual correction")

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="usage_sessions",
                                   db_index=False)  # (instrument, start) and (instrument, external_ref) serve
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                             related_name="usage_sessions")
    # Matched by reconciliation, never typed.
    booking = models.ForeignKey(Booking, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="usage_sessions")
    start = models.DateTimeField(_("start"), null=True, blank=True)
    end = models.DateTimeField(_("end"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    # The logger's own session id (start and stop events carry it), unique per instrument.
    external_ref = models.CharField(max_length=100, null=True, blank=True)
    samples = models.PositiveIntegerField(_("samples"), default=0)
    auto_closed = models.BooleanField(_("closed by the platform"), default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "external_ref"], name="usage_session_ref_unique"),
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(start__isnull=True) | Q(start__lte=models.F("end")),
                name="usage_session_order",
            ),
        ]
        indexes = [
            models.Index(fields=["instrument", "start"]),
            models.Index(fields=["end"]),
        ]

    def __str__(self) -> str:
        return f"usage {self.instrument_id} {self.start}–{self.end}"

    @property
    def is_open(self) -> bool:
        return self.start is not None and self.end is None


class UsageEvent(models.Model):
    """Every event a logger sent, once: the logger's own event id is the idempotency key."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="usage_events")
    event_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=10)  # start, stop, session
    session_ref = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "event_id"], name="usage_event_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_id}"


class BillableItem(models.Model):
    """What reconciliation says may be charged: one per booking, or per unbooked session.

    Billing turns it into a charge at the rate valid at ``service_start``. The unique keys
    (booking, session) make reconciliation re-runnable: it upserts, never adds.
    """

    class Kind(models.TextChoices):
        BOOKING = "booking", _("Booked use")
        NO_SHOW = "no_show", _("No-show")
        LATE_CANCEL = "late_cancel", _("Late cancellation")
        UNBOOKED = "unbooked", _("Unbooked use")

    class Unit(models.TextChoices):
        HOUR = "hour", _("hour")
        SAMPLE = "sample", _("sample")
        USE = "use", _("use")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        WAIVED = "waived", _("Waived")
        BILLED = "billed", _("Billed")

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="billable_item")
    session = models.OneToOneField(UsageSession, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="billable_item")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="billable_items",
                                   db_index=False)  # (instrument, service_start) serves
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                             related_name="billable_items")
    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, null=True, blank=True, related_name="billable_items")
    is_internal = models.BooleanField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    charge_mode = models.CharField(max_length=12)
    unit = models.CharField(max_length=8, choices=Unit.choices)
    # For hours: billable minutes (after minimum and rounding). For samples and uses: the count.
    quantity = models.PositiveIntegerField()
    booked_minutes = models.PositiveIntegerField(default=0)
    used_minutes = models.PositiveIntegerField(default=0)
    samples = models.PositiveIntegerField(default=0)
    service_start = models.DateTimeField()
    service_end = models.DateTimeField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    corrected = models.BooleanField(default=False, help_text=_("Set by a lab manager; reconciliation keeps it."))
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service_start", "id"]
        indexes = [
            models.Index(fields=["service_start"]),
            models.Index(fields=["instrument", "service_start"]),
            models.Index(fields=["state", "service_start"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(booking__isnull=False) | Q(session__isnull=False),
                                   name="billable_item_has_source"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.quantity} {self.unit} on {self.instrument_id}"


class ReviewFlag(models.Model):
    """Something the lab manager should look at: the platform noticed, a person decides."""

    class Kind(models.TextChoices):
        OVERRUN = "overrun", _("Overrun")
        EARLY_FINISH = "early_finish", _("Early finish")
        UNBOOKED = "unbooked", _("Unbooked use")
        OPEN_SESSION = "open_session", _("Session left open")
        NO_SHOW = "no_show", _("No-show")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        ACCEPTED = "accepted", _("Accepted")
        CORRECTED = "corrected", _("Corrected")
        WAIVED = "waived", _("Waived")

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="review_flags")
    kind = models.CharField(max_length=15, choices=Kind.choices)
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    session = models.ForeignKey(UsageSession, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    detail = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "booking"], condition=Q(booking__isnull=False),
                                    name="review_flag_once_per_booking"),
            models.UniqueConstraint(fields=["kind", "session"], condition=Q(session__isnull=False),
                                    name="review_flag_once_per_session"),
        ]
        indexes = [models.Index(fields=["instrument", "state"])]

    def __str__(self) -> str:
        return f"{self.kind} ({self.state})"


class ServiceRecord(models.Model):
    """A completed service, in the shape the national sharing platform asks for."""

    class Way(models.TextChoices):
        INSTRUMENT_USE = "use", _("Use of the instrument")
        TECHNICAL = "technical", _("Technical service")
        SAMPLE = "sample", _("Sample submission")
        REMOTE = "remote", _("Remote")
        OTHER = "other", _("Other")

    class Direction(models.TextChoices):
        RESEARCH = "research", _("Research")
        DEVELOPMENT = "development", _("Development")
        TEACHING = "teaching", _("Teaching")
        OTHER = "other", _("Other")

    item = models.OneToOneField(BillableItem, on_delete=models.PROTECT, related_name="service_record")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="service_records",
                                   db_index=False)  # (instrument, start) serves
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                             related_name="service_records")
    applicant_organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, null=True,
                                               blank=True, related_name="+")
    way = models.CharField(max_length=10, choices=Way.choices, default=Way.INSTRUMENT_USE)
    is_internal = models.BooleanField()
    direction = models.CharField(max_length=12, choices=Direction.choices, default=Direction.RESEARCH)
    project = models.CharField(max_length=200, blank=True)
    funding_programme = models.CharField(max_length=200, blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    hours = models.DecimalField(max_digits=10, decimal_places=2)
    samples = models.PositiveIntegerField(default=0)
    fee = models.DecimalField(max_digits=13, decimal_places=2, null=True, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["instrument", "start"]), models.Index(fields=["start"])]
        constraints = [
            models.CheckConstraint(condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                                   name="service_record_rating_range"),
        ]

    def __str__(self) -> str:
        return f"service {self.instrument_id} {self.start:%Y-%m-%d}"
