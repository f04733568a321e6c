"""The sharing compliance report: which mandatory instruments are not listed, not shared, late or incomplete.

The rule (configurable in settings, Qingdao's values by default): an instrument bought wholly or
partly with public funds (central or local fiscal) and worth at least MANDATORY_LISTING_VALUE must
be listed for external sharing within LISTING_DEADLINE_WORKING_DAYS working days of purchase; from
NATIONAL_REPORT_VALUE it must also reach the national platform within NATIONAL_REPORT_WORKING_DAYS
working days of acceptance (publishing here is what reports it). Working days follow the State
Council's holiday calendar, make-up working days included, as published in ``chinese_calendar``;
for years the package does not know yet we count Monday to Friday and mark the deadline estimated.

An approved listing exemption (a ``ListingChangeRequest``) lifts what it covers: "unpublish" lifts
the listing and deadline flags, "not_shared" lifts the sharing flag. Missing fields are never exempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

import chinese_calendar
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import queries
from .models import Instrument, ListingChangeRequest

UNLISTED = "unlisted"
NOT_SHARED = "not_shared"
OVERDUE_CITY = "overdue_city"
OVERDUE_NATIONAL = "overdue_national"
MISSING_FIELDS = "missing_fields"

FLAG_LABELS = {
    UNLISTED: _("Not listed"),
    NOT_SHARED: _("Not shared externally"),
    OVERDUE_CITY: _("Listing deadline missed"),
    OVERDUE_NATIONAL: _("National report deadline missed"),
    MISSING_FIELDS: _("Missing required fields"),
}

# What the national platform's record cannot do without (besides what the database already requires).
REQUIRED_FIELDS = (
    "subject_code", "country", "manufacturer", "model_number", "purchase_date", "acceptance_date",
    "specifications", "main_functions", "service_content", "fee_standard", "address", "contact_name",
)
CONTACT_FIELDS = ("contact_phone", "contact_email")  # at least one of them


# --- working days ------------------------------------------------------------------------------


@lru_cache(maxsize=16384)  # some forty years of days; chinese_calendar scans its tables on every call
def is_working_day(day: date) -> tuple[bool, bool]:
    """Whether ``day`` is a working day in mainland China, and whether the official calendar knew it."""
    try:
        return chinese_calendar.is_workday(day), True
    except NotImplementedError:  # a year the package has no data for: plain Monday to Friday
        return day.weekday() < 5, False


@lru_cache(maxsize=8192)  # a city's instruments share a few thousand purchase dates at most
def add_working_days(start: date, days: int) -> tuple[date, bool]:
    """The date of the ``days``-th working day after ``start`` (not counting ``start`` itself).

    Returns the date and whether it is estimated (some day on the way fell outside the years the
    holiday calendar knows).
    """
    day, remaining, estimated = start, days, False
    while remaining > 0:
        day += timedelta(days=1)
        working, known = is_working_day(day)
        estimated = estimated or not known
        if working:
            remaining -= 1
    return day, estimated


# --- one instrument -------------------------------------------------------------------------


@dataclass
class ComplianceRow:
    instrument: Instrument
    flags: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    city_due: date | None = None
    national_due: date | None = None
    published_on: date | None = None
    estimated: bool = False
    exemptions: list[str] = field(default_factory=list)

    @property
    def flag_labels(self) -> list[str]:
        return [str(FLAG_LABELS[flag]) for flag in self.flags]

    @property
    def missing_labels(self) -> list[str]:
        meta = Instrument._meta
        return [str(meta.get_field(name).verbose_name) if name != "contact" else str(_("contact phone or e-mail"))
                for name in self.missing]


def missing_fields(instrument: Instrument) -> list[str]:
    missing = [name for name in REQUIRED_FIELDS if getattr(instrument, name) in (None, "")]
    if not any(getattr(instrument, name) for name in CONTACT_FIELDS):
        missing.append("contact")
    return missing


def _late(published_on: date | None, due: date, today: date) -> bool:
    return published_on > due if published_on else today > due


def check_instrument(instrument: Instrument, *, today: date) -> ComplianceRow:
    """Every flag for one mandatory instrument as of ``today`` (a date in the platform's zone)."""
    exemptions = getattr(instrument, "approved_exemptions", None)
    if exemptions is None:
        exemptions = list(instrument.listing_requests.filter(state=ListingChangeRequest.State.APPROVED))
    kinds = sorted({exemption.kind for exemption in exemptions})
    listing_exempt = ListingChangeRequest.Kind.UNPUBLISH in kinds
    sharing_exempt = listing_exempt or ListingChangeRequest.Kind.NOT_SHARED in kinds
    row = ComplianceRow(instrument=instrument, exemptions=kinds)
    if instrument.published_at:
        row.published_on = timezone.localtime(instrument.published_at, instrument.zone).date()
    if instrument.purchase_date:
        row.city_due, estimated = add_working_days(instrument.purchase_date, settings.LISTING_DEADLINE_WORKING_DAYS)
        row.estimated |= estimated
    if instrument.acceptance_date and instrument.original_value >= settings.NATIONAL_REPORT_VALUE:
        row.national_due, estimated = add_working_days(instrument.acceptance_date,
                                                       settings.NATIONAL_REPORT_WORKING_DAYS)
        row.estimated |= estimated
    if not listing_exempt:
        if not instrument.is_published:
            row.flags.append(UNLISTED)
        if row.city_due and _late(row.published_on, row.city_due, today):
            row.flags.append(OVERDUE_CITY)
        if row.national_due and _late(row.published_on, row.national_due, today):
            row.flags.append(OVERDUE_NATIONAL)
    if not sharing_exempt and instrument.share_mode != Instrument.ShareMode.EXTERNAL:
        row.flags.append(NOT_SHARED)
    row.missing = missing_fields(instrument)
    if row.missing:
        row.flags.append(MISSING_FIELDS)
    return row


# --- the report -------------------------------------------------------------------------------


@dataclass
class OrganizationSummary:
    organization_id: int
    name_zh: str
    name_en: str
    mandatory: int = 0
    flagged: int = 0

    @property
    def compliant(self) -> int:
        return self.mandatory - self.flagged

    @property
    def rate(self) -> Decimal:
        if not self.mandatory:
            return Decimal("100.0")
        return (Decimal(self.compliant) * 100 / self.mandatory).quantize(Decimal("0.1"))


@dataclass
class ComplianceReport:
    as_of: date
    rows: list[ComplianceRow]
    summaries: list[OrganizationSummary]

    @property
    def estimated(self) -> bool:
        return any(row.estimated for row in self.rows)


def build_report(*, organization_ids: set[int] | None = None, today: date | None = None) -> ComplianceReport:
    """Flagged mandatory instruments, per organization. ``organization_ids=None`` means all of them."""
    today = today or timezone.localdate()
    summaries: dict[int, OrganizationSummary] = {}
    rows = []
    candidates = queries.mandatory_instruments(threshold=settings.MANDATORY_LISTING_VALUE,
                                               organization_ids=organization_ids)
    for instrument in candidates:
        organization = instrument.organization
        summary = summaries.setdefault(
            organization.pk, OrganizationSummary(organization.pk, organization.name_zh, organization.name_en)
        )
        summary.mandatory += 1
        row = check_instrument(instrument, today=today)
        if row.flags:
            summary.flagged += 1
            rows.append(row)
    ordered = sorted(summaries.values(), key=lambda s: s.name_zh)
    return ComplianceReport(as_of=today, rows=rows, summaries=ordered)


# --- export -----------------------------------------------------------------------------------


def _date(value: date | None) -> str:
    return value.isoformat() if value else ""


EXPORT_COLUMNS = [
    (_("Organization"), lambda row: row.instrument.organization.name_zh),
    (_("Lab"), lambda row: row.instrument.lab.name_zh),
    (_("Asset number"), lambda row: row.instrument.asset_number),
    (_("Instrument"), lambda row: row.instrument.name_zh),
    (_("Original value (CNY)"), lambda row: row.instrument.original_value),
    (_("Funding"), lambda row: "; ".join(row.instrument.funding_labels)),
    (_("Listing"), lambda row: str(row.instrument.get_listing_state_display())),
    (_("Share mode"), lambda row: str(row.instrument.get_share_mode_display())),
    (_("Purchase date"), lambda row: _date(row.instrument.purchase_date)),
    (_("Listing deadline"), lambda row: _date(row.city_due)),
    (_("Acceptance date"), lambda row: _date(row.instrument.acceptance_date)),
    (_("National report deadline"), lambda row: _date(row.national_due)),
    (_("First published"), lambda row: _date(row.published_on)),
    (_("Problems"), lambda row: "; ".join(row.flag_labels)),
    (_("Missing fields"), lambda row: "; ".join(row.missing_labels)),
    (_("Deadline estimated (Mon–Fri)"), lambda row: str(_("yes")) if row.estimated else ""),
]


def export_table(report: ComplianceReport) -> tuple[list[str], list[list]]:
    headers = [str(label) for label, _getter in EXPORT_COLUMNS]
    return headers, [[getter(row) for _label, getter in EXPORT_COLUMNS] for row in report.rows]
