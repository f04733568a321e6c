"""Sample submissions (送样检测): the user sends samples, the lab runs the analyses and returns data.

A request names an instrument in sample mode, the samples and their hazards, the analyses asked for
from the lab's list and what happens to the samples afterwards. The lab quotes, the requester accepts,
the lab receives the samples, schedules and does the work and delivers result files; completion is
what usage turns into a billable item and a service record. Every move is in ``transitions.py``.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from catalog.models import Instrument
from instrumentshare.accounts.models import Lab
from instrumentshare.core.time import SafeDateTimeField


class SampleService(models.Model):
    """How an instrument takes samples: the turnaround target and what the lab asks of hazardous samples."""

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="sample_service")
    turnaround_days = models.PositiveIntegerField(_("turnaround target (days)"), default=10,
                                                  validators=[MinValueValidator(1), MaxValueValidator(365)])
    safety_requirements = models.TextField(_("safety requirements for hazardous samples"), blank=True,
                                           max_length=4000)
    sample_requirements = models.TextField(_("sample requirements"), blank=True, max_length=4000)
    max_samples = models.PositiveIntegerField(_("most samples per request"), default=200)

    class Meta:
        verbose_name = _("sample service")
        verbose_name_plural = _("sample services")

    def __str__(self) -> str:
        return f"sample service of {self.instrument_id}"


class Analysis(models.Model):
    """An analysis from the lab's list, with the list price per sample the form's estimate uses."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="analyses")
    code = models.CharField(_("code"), max_length=30)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    price_per_sample = models.DecimalField(_("list price per sample"), max_digits=13, decimal_places=2,
                                           default=Decimal("0.00"))
    is_active = models.BooleanField(_("offered"), default=True)

    class Meta:
        ordering = ["instrument_id", "code"]
        verbose_name = _("analysis")
        verbose_name_plural = _("analyses")
        constraints = [
            models.UniqueConstraint(fields=["instrument", "code"], name="analysis_code_per_instrument"),
            models.CheckConstraint(condition=Q(price_per_sample__gte=0), name="analysis_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name_zh}"


class SampleRequest(models.Model):
    class State(models.TextChoices):
        SUBMITTED = "submitted", _("Submitted")
        QUOTED = "quoted", _("Quoted")
        ACCEPTED = "accepted", _("Quote accepted")
        RECEIVED = "received", _("Samples received")
        SCHEDULED = "scheduled", _("Scheduled")
        IN_PROGRESS = "in_progress", _("In progress")
        DELIVERED = "delivered", _("Results delivered")
        COMPLETED = "completed", _("Completed")
        DECLINED = "declined", _("Quote declined")
        CANCELLED = "cancelled", _("Cancelled")
        REJECTED = "rejected", _("Rejected")

    class SampleState(models.TextChoices):
        SOLID = "solid", _("Solid")
        POWDER = "powder", _("Powder")
        LIQUID = "liquid", _("Liquid")
        GAS = "gas", _("Gas")
        FILM = "film", _("Thin film")
        BIOLOGICAL = "biological", _("Biological tissue or cells")
        OTHER = "other", _("Other")

    class Hazard(models.TextChoices):
        TOXIC = "toxic", _("Toxic")
        RADIOACTIVE = "radioactive", _("Radioactive")
        BIOLOGICAL = "biological", _("Biohazard")
        FLAMMABLE = "flammable", _("Flammable")
        CORROSIVE = "corrosive", _("Corrosive")

    class AfterUse(models.TextChoices):
        RETURN = "return", _("Return to me")
        DISPOSE = "dispose", _("Dispose of by the lab")

    # Work still open: the lab's queue, overdue checks.
    OPEN_STATES = (State.SUBMITTED, State.QUOTED, State.ACCEPTED, State.RECEIVED, State.SCHEDULED,
                   State.IN_PROGRESS, State.DELIVERED)
    FINAL_STATES = (State.COMPLETED, State.DECLINED, State.CANCELLED, State.REJECTED)

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="sample_requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sample_requests")
    # The requester's lab the work is for (the default cost centre), like a booking's charged lab.
    charged_lab = models.ForeignKey(Lab, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    is_internal = models.BooleanField(_("internal use"), default=True)
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.SUBMITTED)
    sample_count = models.PositiveIntegerField(_("number of samples"), validators=[MinValueValidator(1)])
    sample_type = models.CharField(_("sample type"), max_length=200)
    sample_state = models.CharField(_("sample state"), max_length=12, choices=SampleState.choices)
    hazards = models.JSONField(_("hazards"), default=list, blank=True)
    safety_statement = models.TextField(_("safety statement"), blank=True, max_length=4000)
    analyses = models.ManyToManyField(Analysis, related_name="requests", verbose_name=_("analyses"))
    after_use = models.CharField(_("after the analysis"), max_length=8, choices=AfterUse.choices,
                                 default=AfterUse.DISPOSE)
    note = models.TextField(_("notes"), blank=True, max_length=4000)
    # Set by the lab as the work goes on.
    received_count = models.PositiveIntegerField(_("samples received"), null=True, blank=True)
    discrepancy = models.TextField(_("discrepancy noted"), blank=True, max_length=2000)
    scheduled_start = SafeDateTimeField(_("scheduled start"), null=True, blank=True)
    scheduled_end = SafeDateTimeField(_("scheduled end"), null=True, blank=True)
    due_at = SafeDateTimeField(pgettext_lazy("sample request", "due"), null=True, blank=True,
                                  help_text=_("Receipt plus the service's turnaround target."))
    reason = models.TextField(_("reason"), blank=True, max_length=2000)
    rating = models.PositiveSmallIntegerField(_("rating"), null=True, blank=True)
    rated_at = SafeDateTimeField(null=True, blank=True)
    submitted_at = SafeDateTimeField(default=timezone.now)
    received_at = SafeDateTimeField(null=True, blank=True)
    delivered_at = SafeDateTimeField(null=True, blank=True)
    completed_at = SafeDateTimeField(null=True, blank=True)
    updated_at = SafeDateTimeField(auto_now=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        verbose_name = _("sample request")
        verbose_name_plural = _("sample requests")
        constraints = [
            models.CheckConstraint(condition=Q(sample_count__gte=1), name="sample_request_has_samples"),
            models.CheckConstraint(condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                                   name="sample_request_rating_range"),
            models.CheckConstraint(
                condition=Q(scheduled_start__isnull=True) | Q(scheduled_start__lt=models.F("scheduled_end")),
                name="sample_request_schedule_order"),
        ]
        indexes = [
            models.Index(fields=["instrument", "state"]),
            models.Index(fields=["requester", "submitted_at"]),
            models.Index(fields=["state", "due_at"]),
            models.Index(fields=["completed_at"]),
        ]

    def __str__(self) -> str:
        return f"sample request #{self.pk} on {self.instrument_id}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    def is_overdue(self, now=None) -> bool:
        return self.is_open and self.due_at is not None and self.due_at < (now or timezone.now())


class Quote(models.Model):
    """The lab's offer: items (per sample or per analysis), a discount and a validity date."""

    request = models.OneToOneField(SampleRequest, on_delete=models.CASCADE, related_name="quote")
    valid_until = models.DateField(_("valid until"))
    discount_percent = models.DecimalField(_("discount (percent)"), max_digits=5, decimal_places=2,
                                           default=Decimal("0.00"),
                                           validators=[MinValueValidator(0), MaxValueValidator(100)])
    subtotal = models.DecimalField(max_digits=13, decimal_places=2)
    total = models.DecimalField(max_digits=13, decimal_places=2)
    currency = models.CharField(max_length=3, default="CNY")
    note = models.TextField(_("note"), blank=True, max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = SafeDateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = SafeDateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("quote")
        verbose_name_plural = _("quotes")
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="quote_total_not_negative"),
        ]

    def __str__(self) -> str:
        return f"quote for request {self.request_id}: {self.total} {self.currency}"


class QuoteItem(models.Model):
    class Unit(models.TextChoices):
        SAMPLE = "sample", _("per sample")
        ANALYSIS = "analysis", _("per analysis")
        ITEM = "item", _("per item")

    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="items")
    analysis = models.ForeignKey(Analysis, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    description = models.CharField(_("description"), max_length=300)
    unit = models.CharField(_("unit"), max_length=8, choices=Unit.choices, default=Unit.SAMPLE)
    quantity = models.PositiveIntegerField(_("quantity"), validators=[MinValueValidator(1)])
    unit_price = models.DecimalField(_("unit price"), max_digits=13, decimal_places=2)
    amount = models.DecimalField(max_digits=13, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="quote_item_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.description} × {self.quantity}"


def _private_storage():
    from django.core.files.storage import storages

    return storages["private"]


class Attachment(models.Model):
    """A file of a request: the requester's (a sample list, a safety data sheet) or the lab's results.

    Stored in the private storage, never under a public URL: only the request's people download it,
    through the API or a signed link that expires."""

    class Kind(models.TextChoices):
        REQUEST = "request", _("Attachment")
        RESULT = "result", _("Result")

    request = models.ForeignKey(SampleRequest, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    file = models.FileField(storage=_private_storage, upload_to="submissions/", max_length=300)
    name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at", "id"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return f"{self.kind} {self.name} of request {self.request_id}"


class RequestEvent(models.Model):
    """The request's history, one row per move, and the e-mail it sends (mailed once: ``mailed_at``)."""

    request = models.ForeignKey(SampleRequest, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    move = models.CharField(max_length=20)
    state_from = models.CharField(max_length=12, blank=True)
    state_to = models.CharField(max_length=12)
    note = models.TextField(blank=True, max_length=2000)
    created_at = SafeDateTimeField(default=timezone.now)
    mailed_at = SafeDateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.move} of request {self.request_id}"
