"""What really happened at the instrument, and what may be charged for it.

Usage sessions (from the instrument's logger, check-in/out, a logbook import or a manual correction)
and the logger's raw events; reconciliation matches them with bookings and writes review flags for a
lab manager, one billable item per booking or unbooked session, and the national platform's service
record. Billing reads the billable items; bookings knows nothing of usage.

The tables were the bookings app's until the usage app was split off (migration 0001 moves them).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bookings.models import Booking
from catalog.models import Instrument
from instrumentshare.accounts.models import Lab
from instrumentshare.core.time import SafeDateTimeField
from submissions.models import SampleRequest


class LoggerToken(models.Model):
    """A per-instrument secret for the logger program on the instrument PC: it can only report usage."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="logger_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = SafeDateTimeField(default=timezone.now)
    last_seen_at = SafeDateTimeField(null=True, blank=True)
    revoked_at = SafeDateTimeField(null=True, blank=True)

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
    start = SafeDateTimeField(_("start"), null=True, blank=True)
    end = SafeDateTimeField(_("end"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    # The logger's own session id (start and stop events carry it), unique per instrument.
    external_ref = models.CharField(max_length=100, null=True, blank=True)
    samples = models.PositiveIntegerField(_("samples"), default=0)
    auto_closed = models.BooleanField(_("closed by the platform"), default=False)
    created_at = SafeDateTimeField(default=timezone.now)
    updated_at = SafeDateTimeField(auto_now=True)

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
    occurred_at = SafeDateTimeField()
    payload = models.JSONField(default=dict)
    received_at = SafeDateTimeField(default=timezone.now)

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
        SAMPLE = "sample", _("Sample submission")

    class Unit(models.TextChoices):
        HOUR = "hour", _("hour")
        SAMPLE = "sample", _("sample")
        USE = "use", _("use")
        ANALYSIS = "analysis", _("analysis")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        WAIVED = "waived", _("Waived")
        BILLED = "billed", _("Billed")

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="billable_item")
    session = models.OneToOneField(UsageSession, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="billable_item")
    # A completed sample request gives one item per line of its accepted quote (``line`` 1, 2, ...),
    # priced at the amount agreed there, not from the rate card.
    sample_request = models.ForeignKey(SampleRequest, on_delete=models.PROTECT, null=True, blank=True,
                                       related_name="billable_items")
    line = models.PositiveSmallIntegerField(default=0, db_default=0)
    agreed_amount = models.DecimalField(max_digits=13, decimal_places=2, null=True, blank=True,
                                        help_text=_("The price agreed in an accepted quote; none: the rate card's."))
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
    service_start = SafeDateTimeField()
    service_end = SafeDateTimeField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    corrected = models.BooleanField(default=False, help_text=_("Set by a lab manager; reconciliation keeps it."))
    note = models.CharField(max_length=500, blank=True)
    created_at = SafeDateTimeField(default=timezone.now)
    updated_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service_start", "id"]
        indexes = [
            models.Index(fields=["service_start"]),
            models.Index(fields=["instrument", "service_start"]),
            models.Index(fields=["state", "service_start"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(booking__isnull=False) | Q(session__isnull=False) | Q(sample_request__isnull=False),
                name="billable_item_has_source"),
            # Completing a request twice cannot bill it twice.
            models.UniqueConstraint(fields=["sample_request", "line"], condition=Q(sample_request__isnull=False),
                                    name="billable_item_once_per_quote_line"),
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
        STOP_WITHOUT_START = "stop_no_start", _("Stop without a start")
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
    resolved_at = SafeDateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, max_length=2000)
    created_at = SafeDateTimeField(default=timezone.now)

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
    start = SafeDateTimeField()
    end = SafeDateTimeField()
    hours = models.DecimalField(max_digits=10, decimal_places=2)
    samples = models.PositiveIntegerField(default=0)
    fee = models.DecimalField(max_digits=13, decimal_places=2, null=True, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    rated_at = SafeDateTimeField(null=True, blank=True)
    created_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["instrument", "start"]), models.Index(fields=["start"])]
        constraints = [
            models.CheckConstraint(condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                                   name="service_record_rating_range"),
        ]

    def __str__(self) -> str:
        return f"service {self.instrument_id} {self.start:%Y-%m-%d}"


class SampleWorkHold(models.Model):
    """The instrument time held for a sample request's work: the booking (state ``held``) that blocks it.
    Usage links the two because it sits above both bookings and submissions, which know nothing of each
    other (``usage/samples.py``)."""

    request = models.OneToOneField(SampleRequest, on_delete=models.CASCADE, related_name="work_hold")
    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, related_name="sample_work")

    def __str__(self) -> str:
        return f"request {self.request_id} holds booking {self.booking_id}"
