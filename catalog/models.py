"""Instruments: the record the national sharing platform asks for, the booking policy,
opening hours, downtime, qualifications, and the listing workflow."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from instrumentshare.accounts.models import Lab, Organization
from instrumentshare.core.time import SafeDateTimeField

from .reference import validate_subject_code


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value}) from error


class Category(models.Model):
    """The national three-level classification of large instruments (6-digit codes)."""

    code = models.CharField(_("code"), max_length=6, primary_key=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    level = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["code"]
        verbose_name = _("instrument category")
        verbose_name_plural = _("instrument categories")

    def __str__(self) -> str:
        return f"{self.code} {self.name_zh}"

    @property
    def prefix(self) -> str:
        """Codes below this one start with this prefix (010000 -> 01, 010100 -> 0101)."""
        return self.code[: 2 * self.level]


class Instrument(models.Model):
    class Affiliation(models.TextChoices):
        KEY_LAB = "key_lab", _("Key laboratory")
        ENGINEERING_CENTER = "engineering_center", _("Engineering research center")
        ANALYSIS_CENTER = "analysis_center", _("Analysis and testing center")
        FIELD_STATION = "field_station", _("Field station")
        OTHER = "other", _("Other")

    class Source(models.TextChoices):
        PURCHASED = "purchased", _("Purchased")
        SELF_BUILT = "self_built", _("Self-built")
        DONATED = "donated", _("Donated")
        OTHER = "other", _("Other")

    class Purpose(models.TextChoices):
        GENERAL = "general", _("General purpose")
        SPECIAL = "special", _("Special purpose")

    class ShareMode(models.TextChoices):
        EXTERNAL = "external", _("Shared externally")
        INTERNAL = "internal", _("Internal only")
        NOT_SHARED = "not_shared", _("Not shared")

    class Status(models.TextChoices):
        NORMAL = "normal", _("Normal")
        OCCASIONAL_FAULTS = "occasional_faults", _("Occasional faults")
        FREQUENT_FAULTS = "frequent_faults", _("Frequent faults")
        UNDER_REPAIR = "under_repair", _("Under repair")
        AWAITING_DISPOSAL = "awaiting_disposal", _("Awaiting disposal")

    class ListingState(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    lab = models.ForeignKey(Lab, verbose_name=_("lab"), on_delete=models.PROTECT, related_name="instruments")
    # Denormalized from the lab (set by the service) so organization-wide reports need no join.
    organization = models.ForeignKey(
        Organization, verbose_name=_("owner organization"), on_delete=models.PROTECT, related_name="instruments"
    )
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    asset_number = models.CharField(_("asset number"), max_length=60)
    affiliation = models.CharField(_("affiliation type"), max_length=30, choices=Affiliation.choices,
                                   default=Affiliation.OTHER)
    category = models.ForeignKey(Category, verbose_name=_("category"), on_delete=models.PROTECT,
                                 related_name="instruments")
    subject_code = models.CharField(_("subject code (GB/T 13745)"), max_length=3, blank=True,
                                    validators=[validate_subject_code])
    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.PURCHASED)
    funded_central = models.BooleanField(_("central fiscal funds"), default=False)
    funded_local = models.BooleanField(_("local fiscal funds"), default=False)
    funded_own = models.BooleanField(_("own funds"), default=False)
    funded_other = models.BooleanField(_("other funds"), default=False)
    original_value = models.DecimalField(_("original value (CNY)"), max_digits=14, decimal_places=2,
                                         validators=[MinValueValidator(Decimal("0"))])
    country = models.CharField(_("country of manufacture"), max_length=60, blank=True)
    manufacturer = models.CharField(_("manufacturer"), max_length=200, blank=True)
    model_number = models.CharField(_("model"), max_length=120, blank=True)
    purchase_date = models.DateField(_("purchase date"), null=True, blank=True)
    acceptance_date = models.DateField(_("acceptance date"), null=True, blank=True)
    purpose = models.CharField(_("purpose"), max_length=10, choices=Purpose.choices, default=Purpose.GENERAL)
    specifications = models.TextField(_("technical specifications"), blank=True)
    main_functions = models.TextField(_("main functions"), blank=True)
    service_content = models.TextField(_("service content"), blank=True)
    user_requirements = models.TextField(_("requirements for users"), blank=True)
    fee_standard = models.TextField(_("published fee standard"), blank=True)
    district = models.CharField(_("district"), max_length=50, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    room = models.CharField(_("room"), max_length=60, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=60, default=settings.DEFAULT_INSTRUMENT_TIME_ZONE,
                                 validators=[validate_time_zone])
    contact_name = models.CharField(_("contact"), max_length=100, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=40, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    photo = models.FileField(_("photo"), upload_to="instruments/", blank=True,
                             validators=[FileExtensionValidator(["jpg", "jpeg", "png", "webp"])])
    share_mode = models.CharField(_("share mode"), max_length=20, choices=ShareMode.choices,
                                  default=ShareMode.EXTERNAL)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.NORMAL)
    customs_supervised = models.BooleanField(_("customs-supervised import"), default=False)
    listing_state = models.CharField(_("listing"), max_length=20, choices=ListingState.choices,
                                     default=ListingState.DRAFT)
    published_at = SafeDateTimeField(_("first published"), null=True, blank=True)
    warmup_minutes = models.PositiveIntegerField(_("warm-up allowance (minutes)"), default=0)
    postprocessing_minutes = models.PositiveIntegerField(_("post-processing allowance (minutes)"), default=0)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)
    updated_at = SafeDateTimeField(auto_now=True)

    class Meta:
        ordering = ["name_zh", "id"]
        verbose_name = _("instrument")
        verbose_name_plural = _("instruments")
        constraints = [
            models.UniqueConstraint(fields=["organization", "asset_number"], name="instrument_asset_per_org"),
            models.CheckConstraint(condition=Q(original_value__gte=0), name="instrument_value_not_negative"),
        ]
        indexes = [
            models.Index(fields=["listing_state", "share_mode"]),
            models.Index(fields=["district", "category"]),
            models.Index(fields=["category"]),
            models.Index(fields=["lab"]),
            # Sorting the search by name, value or newest (each in the sort's own order, so that a page stops
            # after its rows instead of sorting every match: a city's 9,507 by name 40 → 13 ms; "newest" is
            # migration 0008's, as SQLite cannot say NULLS LAST in an index), and the compliance report per
            # organization.
            models.Index(fields=["name_zh", "id"], name="instrument_name_idx"),
            models.Index(fields=["original_value"], name="instrument_value_idx"),
            models.Index(fields=["published_at"], name="instrument_published_idx"),
            models.Index(fields=["organization", "original_value"], name="instrument_org_value_idx"),
        ]

    def __str__(self) -> str:
        return self.name_zh

    @property
    def is_publicly_funded(self) -> bool:
        return self.funded_central or self.funded_local

    @property
    def is_published(self) -> bool:
        return self.listing_state == self.ListingState.PUBLISHED

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def funding_labels(self) -> list[str]:
        fields = ("funded_central", "funded_local", "funded_own", "funded_other")
        return [str(self._meta.get_field(field).verbose_name) for field in fields if getattr(self, field)]


class BookingPolicy(models.Model):
    class Mode(models.TextChoices):
        SLOTS = "slots", _("Bookable time slots")
        SAMPLES = "samples", _("Sample submission only")

    class Approval(models.TextChoices):
        NONE = "none", _("No approval")
        ALL = "all", _("Approval for everyone")
        EXTERNAL = "external", _("Approval for external users")

    class ChargeMode(models.TextChoices):
        BOOKED = "booked", _("Booked time")
        USED = "used", _("Used time")
        LONGER = "longer", _("The longer of booked and used time")
        PER_SAMPLE = "per_sample", _("Per sample")
        PER_USE = "per_use", _("Per use")

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="policy")
    mode = models.CharField(_("booking mode"), max_length=10, choices=Mode.choices, default=Mode.SLOTS)
    slot_minutes = models.PositiveIntegerField(_("slot granularity (minutes)"), default=30,
                                               validators=[MinValueValidator(5), MaxValueValidator(1440)])
    min_minutes = models.PositiveIntegerField(_("minimum duration (minutes)"), default=30)
    max_minutes = models.PositiveIntegerField(_("maximum duration (minutes)"), default=8 * 60)
    min_notice_minutes = models.PositiveIntegerField(_("minimum notice (minutes)"), default=60)
    horizon_days = models.PositiveIntegerField(_("booking horizon (days)"), default=60,
                                               validators=[MinValueValidator(1), MaxValueValidator(730)])
    cancellation_window_hours = models.PositiveIntegerField(_("free cancellation until (hours before)"), default=24)
    buffer_minutes = models.PositiveIntegerField(_("buffer between bookings (minutes)"), default=0,
                                                 validators=[MaxValueValidator(24 * 60)])
    approval = models.CharField(_("approval"), max_length=10, choices=Approval.choices, default=Approval.NONE)
    qualification_required = models.BooleanField(_("qualification required"), default=False)
    closed_on_public_holidays = models.BooleanField(_("closed on Chinese public holidays"), default=False)
    max_hours_per_user_week = models.PositiveIntegerField(_("quota per user per week (hours, 0 = none)"), default=0)
    max_hours_per_lab_week = models.PositiveIntegerField(_("quota per lab per week (hours, 0 = none)"), default=0)
    charge_mode = models.CharField(_("charge mode"), max_length=12, choices=ChargeMode.choices,
                                   default=ChargeMode.BOOKED)
    min_charge_minutes = models.PositiveIntegerField(_("minimum charge (minutes)"), default=0)
    rounding_minutes = models.PositiveIntegerField(_("rounding unit (minutes)"), default=15,
                                                   validators=[MinValueValidator(1)])
    no_show_grace_minutes = models.PositiveIntegerField(_("no-show grace period (minutes)"), default=30)
    no_show_charge_percent = models.PositiveIntegerField(_("no-show charge (percent of booked)"), default=100,
                                                         validators=[MaxValueValidator(100)])
    late_cancel_charge_percent = models.PositiveIntegerField(_("late cancellation charge (percent of booked)"),
                                                             default=50, validators=[MaxValueValidator(100)])

    class Meta:
        verbose_name = _("booking policy")
        verbose_name_plural = _("booking policies")
        constraints = [
            models.CheckConstraint(condition=Q(min_minutes__lte=models.F("max_minutes")), name="policy_min_le_max",
                                   violation_error_message=_("The shortest booking may not be longer than the "
                                                             "longest.")),
        ]

    def __str__(self) -> str:
        return f"policy of {self.instrument_id}"


class OpeningRule(models.Model):
    """Weekly opening hours in the instrument's own zone. Minutes of the day, close up to 1440."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="opening_rules")
    weekday = models.PositiveSmallIntegerField(_("weekday"), validators=[MaxValueValidator(6)],
                                               help_text=_("0 = Monday … 6 = Sunday"))
    open_minute = models.PositiveIntegerField(_("opens (minute of day)"), validators=[MaxValueValidator(1439)])
    close_minute = models.PositiveIntegerField(_("closes (minute of day)"), validators=[MaxValueValidator(1440)])

    class Meta:
        ordering = ["weekday", "open_minute"]
        constraints = [
            models.CheckConstraint(condition=Q(open_minute__lt=models.F("close_minute")), name="opening_rule_order",
                                   violation_error_message=_("Opening hours close after they open.")),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="opening_rule_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.weekday} {self.open_minute // 60:02d}:{self.open_minute % 60:02d}-" \
               f"{self.close_minute // 60:02d}:{self.close_minute % 60:02d}"


class OpeningException(models.Model):
    """A day that differs from the weekly rule: closed (holiday) or open at other hours."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="opening_exceptions")
    date = models.DateField(_("date"))
    closed = models.BooleanField(_("closed all day"), default=True)
    open_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MaxValueValidator(1439)])
    close_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MaxValueValidator(1440)])
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["instrument", "date"], name="opening_exception_per_day")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.date}"


class Downtime(models.Model):
    class Kind(models.TextChoices):
        PLANNED = "planned", _("Planned maintenance")
        UNPLANNED = "unplanned", _("Unplanned repair")

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="downtimes")
    start = SafeDateTimeField(_("from"))
    end = SafeDateTimeField(_("until"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.PLANNED)
    reason = models.CharField(_("reason"), max_length=300)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["start"]
        constraints = [models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="downtime_order",
                                             violation_error_message=_("A downtime ends after it starts."))]
        indexes = [models.Index(fields=["instrument", "start", "end"])]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class OpeningWindow(models.Model):
    """Opening hours as UTC ranges, materialized over the booking horizon (``catalog.windows``) so that
    PostgreSQL can subtract bookings and downtime from them in one statement. Derived data: written
    only by ``catalog.windows`` (from the services that change hours, exceptions, policy or zone, and
    the daily task that moves the horizon on), never edited. GiST-indexed on PostgreSQL (migration)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="+")
    start = SafeDateTimeField()
    end = SafeDateTimeField()

    class Meta:
        ordering = ["instrument", "start"]
        constraints = [models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="opening_window_order")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class OpeningWindowCover(models.Model):
    """The span [start, end) an instrument's ``OpeningWindow`` rows are complete for. A read outside it
    (or of an instrument without one) computes opening hours in Python instead."""

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, primary_key=True, related_name="+")
    start = SafeDateTimeField()
    end = SafeDateTimeField()
    refreshed_at = SafeDateTimeField()

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.start:%Y-%m-%d}–{self.end:%Y-%m-%d}"


class Qualification(models.Model):
    """A lab manager's record that a user is trained on an instrument."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="qualifications")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qualifications")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_at = SafeDateTimeField(default=timezone.now)
    expires_at = SafeDateTimeField(_("expires"), null=True, blank=True)
    revoked_at = SafeDateTimeField(null=True, blank=True)
    note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta:
        ordering = ["-granted_at"]
        indexes = [models.Index(fields=["instrument", "user"])]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.instrument_id}"

    def is_valid(self, at=None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > at)


class TrainingRequest(models.Model):
    class State(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Trained")
        DECLINED = "declined", _("Declined")

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="training_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_requests")
    message = models.TextField(_("message"), blank=True, max_length=2000)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created_at = SafeDateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = SafeDateTimeField(null=True, blank=True)
    decision_note = models.TextField(_("note to the requester"), blank=True, max_length=2000)
    qualification = models.ForeignKey("Qualification", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "instrument"], name="training_request_queue_idx")]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "user"], condition=Q(state="open"),
                                    name="one_open_training_request")
        ]

    def __str__(self) -> str:
        return f"training {self.user_id} on {self.instrument_id}"


class ListingChangeRequest(models.Model):
    """Unpublishing, or setting a mandatory instrument to not shared, needs the bureau's approval."""

    class Kind(models.TextChoices):
        UNPUBLISH = "unpublish", _("Unpublish")
        NOT_SHARED = "not_shared", _("Set to not shared")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="listing_requests")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    justification = models.TextField(_("justification"), max_length=4000)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = SafeDateTimeField(default=timezone.now)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = SafeDateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "kind"], condition=Q(state="pending"),
                                    name="one_pending_listing_request")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.instrument_id} ({self.state})"
