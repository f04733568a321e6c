"""Summary tables for the bureau's statistics, the national platform exports, and purchase checks.

The statistics are derived data: ``services.refresh_statistics`` recomputes a year from usage
sessions, bookings, service records and charges with a handful of GROUP BY queries and replaces
that year's rows, so dashboards and the API read these small tables instead of the raw records.

- ``InstrumentMonthStat``: additive measures per instrument and month (only months with activity).
- ``InstrumentYearStat``: the same per instrument and year, for every instrument that existed that
  year (idle ones included, with zeros) plus its annual quota: the base of utilization and idle lists.
- ``InstrumentMonthUser`` and ``InstrumentMonthInvoice``: who was served and which invoices were
  issued, per instrument and month, so that distinct counts (users, external organizations,
  invoices) are right for any grouping: they cannot be added up from per-instrument counts.

Each row carries the instrument's organization, lab, category and district as they were at the
refresh, so grouping needs no join.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog.models import Category, Instrument
from instrumentshare.accounts.models import Lab, Organization
from instrumentshare.core.time import SafeDateTimeField

MONEY = {"max_digits": 15, "decimal_places": 2, "default": Decimal("0.00")}


# The summary tables are derived and rewritten by every refresh: their foreign keys are not database
# constraints (checking hundreds of thousands of them at each commit would cost more than the refresh
# itself); deleting an instrument still deletes its rows (Django's CASCADE).
DERIVED = {"on_delete": models.CASCADE, "related_name": "+", "db_constraint": False}


class InstrumentDimensions(models.Model):
    """Where an instrument sits, copied at the refresh: the keys every statistic is grouped by."""

    instrument = models.ForeignKey(Instrument, **DERIVED)
    organization = models.ForeignKey(Organization, **DERIVED)
    lab = models.ForeignKey(Lab, **DERIVED)
    category = models.ForeignKey(Category, **DERIVED)
    district = models.CharField(max_length=50, blank=True)
    year = models.PositiveSmallIntegerField()

    class Meta:
        abstract = True


class Measures(models.Model):
    """The additive measures. Minutes are whole minutes of the group's summed durations."""

    sessions = models.PositiveIntegerField(default=0)
    use_minutes = models.PositiveIntegerField(default=0, help_text=_("Logged use."))
    allowance_minutes = models.PositiveIntegerField(
        default=0, help_text=_("Warm-up and post-processing allowance: per session, as configured on the instrument."))
    effective_minutes = models.PositiveIntegerField(default=0, help_text=_("Use plus allowance."))
    external_minutes = models.PositiveIntegerField(default=0, help_text=_("Effective minutes of external use."))
    settled_bookings = models.PositiveIntegerField(default=0, help_text=_("Completed bookings and no-shows."))
    no_shows = models.PositiveIntegerField(default=0)
    service_records = models.PositiveIntegerField(default=0)
    external_service_records = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    rating_count = models.PositiveIntegerField(default=0)
    # Sample submissions completed in the period (by completion), their samples received, and the sum of
    # their turnaround, receipt to results delivered (the average is the sum over the count).
    sample_requests = models.PositiveIntegerField(default=0)
    samples = models.PositiveIntegerField(default=0)
    turnaround_minutes = models.PositiveIntegerField(default=0)
    income = models.DecimalField(**MONEY)
    external_income = models.DecimalField(**MONEY)
    voucher_amount = models.DecimalField(**MONEY)

    class Meta:
        abstract = True


class InstrumentMonthStat(InstrumentDimensions, Measures):
    month = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["year", "month", "instrument_id"]
        verbose_name = _("instrument month statistic")
        verbose_name_plural = _("instrument month statistics")
        constraints = [
            models.UniqueConstraint(fields=["instrument", "year", "month"], name="oversight_month_stat_once"),
            models.CheckConstraint(condition=Q(month__gte=1, month__lte=12), name="oversight_month_stat_month"),
        ]
        indexes = [
            models.Index(fields=["year", "month"], name="oversight_month_ym_idx"),
            models.Index(fields=["year", "organization"], name="oversight_month_org_idx"),
            models.Index(fields=["year", "lab"], name="oversight_month_lab_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.year}-{self.month:02d}"


class InstrumentYearStat(InstrumentDimensions, Measures):
    purpose = models.CharField(max_length=10)
    quota_hours = models.PositiveIntegerField()
    original_value = models.DecimalField(max_digits=14, decimal_places=2)
    is_mandatory = models.BooleanField(default=False, help_text=_("Publicly funded and at the listing threshold."))
    is_open = models.BooleanField(default=False, help_text=_("Published and shared externally at the refresh."))
    is_published = models.BooleanField(default=False)

    class Meta:
        ordering = ["year", "instrument_id"]
        verbose_name = _("instrument year statistic")
        verbose_name_plural = _("instrument year statistics")
        constraints = [models.UniqueConstraint(fields=["instrument", "year"], name="oversight_year_stat_once")]
        indexes = [
            models.Index(fields=["year", "organization"], name="oversight_year_org_idx"),
            models.Index(fields=["year", "lab"], name="oversight_year_lab_idx"),
            models.Index(fields=["year", "category"], name="oversight_year_category_idx"),
            models.Index(fields=["year", "district"], name="oversight_year_district_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.year}"


class InstrumentMonthUser(InstrumentDimensions):
    """A user served on an instrument in a month (from usage sessions and service records)."""

    month = models.PositiveSmallIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, **DERIVED)
    is_external = models.BooleanField()
    user_organization = models.ForeignKey(Organization, null=True, blank=True, **DERIVED)
    user_district = models.CharField(max_length=50, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "year", "month", "user"], name="oversight_month_user_once"),
        ]
        indexes = [
            models.Index(fields=["year", "month"], name="oversight_user_ym_idx"),
            models.Index(fields=["year", "organization"], name="oversight_user_org_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.instrument_id} {self.year}-{self.month:02d}"


class InstrumentMonthInvoice(InstrumentDimensions):
    """An invoice issued (in this month, platform time zone) with a charge for this instrument."""

    month = models.PositiveSmallIntegerField()
    invoice_id = models.BigIntegerField()  # billing.Invoice; a plain id keeps billing's tables out of our deletes

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "invoice_id"], name="oversight_month_invoice_once"),
        ]
        indexes = [models.Index(fields=["year", "month"], name="oversight_invoice_ym_idx")]

    def __str__(self) -> str:
        return f"invoice {self.invoice_id} for {self.instrument_id}"


class StatRefresh(models.Model):
    """When a year's statistics were last computed, so pages can say how fresh they are."""

    year = models.PositiveSmallIntegerField(unique=True)
    refreshed_at = SafeDateTimeField()
    seconds = models.DecimalField(max_digits=9, decimal_places=2, default=Decimal("0"))
    instruments = models.PositiveIntegerField(default=0)
    month_rows = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-year"]

    def __str__(self) -> str:
        return f"statistics {self.year} at {self.refreshed_at:%Y-%m-%d %H:%M}"


class NationalExport(models.Model):
    """One organization's quarterly report to the national platform, exactly as it was sent.

    ``payload`` holds every record the export contained (instruments, service records, the annual
    report so far); ``digest`` is the SHA-256 of its canonical JSON. One per organization and
    quarter: exporting again returns this row and never sends a second, different version.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="national_exports")
    period = models.CharField(_("quarter"), max_length=7)  # 2026-Q1
    year = models.PositiveSmallIntegerField()
    quarter = models.PositiveSmallIntegerField()
    created_at = SafeDateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    payload = models.JSONField()
    digest = models.CharField(max_length=64)
    instrument_count = models.PositiveIntegerField(default=0)
    service_record_count = models.PositiveIntegerField(default=0)
    transport = models.CharField(max_length=100, blank=True)
    destination = models.CharField(max_length=500, blank=True)
    sent_at = SafeDateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-year", "-quarter", "organization_id"]
        verbose_name = _("national platform export")
        verbose_name_plural = _("national platform exports")
        constraints = [
            models.UniqueConstraint(fields=["organization", "period"], name="national_export_once_per_quarter"),
            models.CheckConstraint(condition=Q(quarter__gte=1, quarter__lte=4), name="national_export_quarter"),
        ]

    def __str__(self) -> str:
        return f"{self.period} of {self.organization_id}"


class PurchaseCheck(models.Model):
    """A duplicate-purchase check a lab ran before buying, kept as evidence for the bureau."""

    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    value = models.DecimalField(_("purchase value (CNY)"), max_digits=14, decimal_places=2)
    year = models.PositiveSmallIntegerField()
    instrument_count = models.PositiveIntegerField(default=0)
    average_hours = models.DecimalField(max_digits=10, decimal_places=1, default=Decimal("0"))
    saturated = models.BooleanField(default=False)
    created_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"check {self.category_id} for {self.lab_id}"
