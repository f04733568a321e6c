"""Reads for the bureau's pages, the API and the reports, all from the summary tables, all scoped.

Who sees what (``scope_for``): the platform administrator (the science bureau) everything; a
finance officer their organizations; a lab manager their labs; anyone else nothing (404).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog import queries as catalog_queries
from catalog.models import Category, Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab, Organization
from instrumentshare.core.dependencies import CACHE_DOWN

from .conf import setting
from .models import (
    InstrumentMonthInvoice,
    InstrumentMonthStat,
    InstrumentMonthUser,
    InstrumentYearStat,
    NationalExport,
    PurchaseCheck,
    StatRefresh,
)
from .stats import ADDITIVE, MONEY_FIELDS, months_fraction, year_fraction

ZERO = Decimal("0.00")
SUMMED = (*ADDITIVE, *MONEY_FIELDS)
DIMENSIONS = ("instrument", "lab", "organization", "category", "district", "city")
GROUP_KEYS = {"instrument": "instrument_id", "lab": "lab_id", "organization": "organization_id",
              "category": "category_id", "district": "district", "city": None}


# --- who sees what ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    everything: bool = False
    organization_ids: frozenset[int] = frozenset()
    lab_ids: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.everything or self.organization_ids or self.lab_ids)

    def q(self) -> Q:
        """The filter on any summary table (they all carry organization_id and lab_id)."""
        if self.everything:
            return Q()
        if self.empty:
            return Q(pk__in=[])
        return Q(organization_id__in=self.organization_ids) | Q(lab_id__in=self.lab_ids)

    def sees_organization(self, organization_id: int) -> bool:
        return self.everything or organization_id in self.organization_ids

    def sees_lab(self, lab: Lab) -> bool:
        return self.everything or lab.pk in self.lab_ids or lab.organization_id in self.organization_ids

    def sees_instrument(self, instrument: Instrument) -> bool:
        return self.everything or instrument.lab_id in self.lab_ids or \
            instrument.organization_id in self.organization_ids


def scope_for(user) -> Scope:
    if not people.is_authenticated(user):
        return Scope()
    if people.is_platform_admin(user):
        return Scope(everything=True)
    return Scope(organization_ids=frozenset(people.finance_organization_ids(user)),
                 lab_ids=frozenset(people.managed_lab_ids(user)))


def narrowed(scope: Scope, *, organization_id: int | None = None, lab_id: int | None = None,
             instrument_id: int | None = None) -> Q:
    """The scope, further narrowed to one organization, lab or instrument."""
    where = scope.q()
    if organization_id:
        where &= Q(organization_id=organization_id)
    if lab_id:
        where &= Q(lab_id=lab_id)
    if instrument_id:
        where &= Q(instrument_id=instrument_id)
    return where


def current_year() -> int:
    return timezone.localdate().year


def last_refresh(year: int) -> StatRefresh | None:
    return StatRefresh.objects.filter(year=year).first()


def refresh_progress(year: int) -> dict | None:
    """A queued or running refresh of ``year`` ({state, done, total, ...}), or None (the cache may be down)."""
    from django.core.cache import cache

    try:
        return cache.get(f"oversight:refresh-progress:{year}")
    except Exception:  # noqa: BLE001 - any cache backend's failure: no progress to show
        return None


def years_available() -> list[int]:
    years = set(StatRefresh.objects.values_list("year", flat=True)) | {current_year()}
    return sorted(years, reverse=True)


# --- one row of statistics ----------------------------------------------------------------------


def ratio(part, whole, places: str = "0.0001") -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def hours(minutes: int) -> Decimal:
    return (Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class StatRow:
    key: Any
    label: str = ""
    detail: str = ""
    instruments: int = 0
    quota_hours: int = 0
    quota_factor: Decimal = Decimal(1)
    sessions: int = 0
    use_minutes: int = 0
    allowance_minutes: int = 0
    effective_minutes: int = 0
    external_minutes: int = 0
    settled_bookings: int = 0
    no_shows: int = 0
    service_records: int = 0
    external_service_records: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    sample_requests: int = 0
    samples: int = 0
    turnaround_minutes: int = 0
    income: Decimal = ZERO
    external_income: Decimal = ZERO
    voucher_amount: Decimal = ZERO
    users: int = 0
    external_users: int = 0
    external_organizations: int = 0
    invoices: int = 0

    @property
    def effective_hours(self) -> Decimal:
        return hours(self.effective_minutes)

    @property
    def external_hours(self) -> Decimal:
        return hours(self.external_minutes)

    @property
    def use_hours(self) -> Decimal:
        return hours(self.use_minutes)

    @property
    def share_rate(self) -> Decimal | None:
        """External service hours ÷ effective machine hours."""
        return ratio(self.external_minutes, self.effective_minutes)

    @property
    def due_quota_hours(self) -> Decimal:
        return (Decimal(self.quota_hours) * self.quota_factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    @property
    def utilization(self) -> Decimal | None:
        """Effective machine hours ÷ the annual quota (pro rata for a part of a year)."""
        return ratio(Decimal(self.effective_minutes) / 60, self.due_quota_hours)

    @property
    def average_rating(self) -> Decimal | None:
        return ratio(self.rating_sum, self.rating_count, "0.01")

    @property
    def no_show_rate(self) -> Decimal | None:
        return ratio(self.no_shows, self.settled_bookings)

    @property
    def average_turnaround_days(self) -> Decimal | None:
        """Receipt of the samples to results delivered, averaged over the completed sample requests."""
        return ratio(Decimal(self.turnaround_minutes) / 1440, self.sample_requests, "0.1")

    def as_dict(self) -> dict:
        data = {name: getattr(self, name) for name in (
            "key", "label", "detail", "instruments", "quota_hours", "sessions", "use_hours", "effective_hours",
            "external_hours", "share_rate", "utilization", "users", "external_users", "external_organizations",
            "service_records", "external_service_records", "income", "external_income", "invoices",
            "voucher_amount", "average_rating", "rating_count", "settled_bookings", "no_shows", "no_show_rate",
            "sample_requests", "samples", "average_turnaround_days")}
        data["key"] = str(self.key) if self.key is not None else ""
        return data


# Columns of statistics tables and their CSV: header, kind (text, number, money, ratio), how to read a row.
STAT_COLUMNS = [
    (_("Name"), "text", lambda row: row.label),
    (_("Detail"), "text", lambda row: row.detail),
    (_("Instruments"), "number", lambda row: row.instruments),
    (_("Effective hours"), "number", lambda row: row.effective_hours),
    (_("External hours"), "number", lambda row: row.external_hours),
    (_("Share rate"), "ratio", lambda row: row.share_rate),
    (_("Quota hours"), "number", lambda row: row.due_quota_hours),
    (_("Utilization"), "ratio", lambda row: row.utilization),
    (_("Users"), "number", lambda row: row.users),
    (_("External organizations"), "number", lambda row: row.external_organizations),
    (_("Service records"), "number", lambda row: row.service_records),
    (_("External service records"), "number", lambda row: row.external_service_records),
    (_("Income (CNY)"), "money", lambda row: row.income),
    (_("External income (CNY)"), "money", lambda row: row.external_income),
    (_("Invoices issued"), "number", lambda row: row.invoices),
    (_("Voucher use (CNY)"), "money", lambda row: row.voucher_amount),
    (_("Average rating"), "number", lambda row: row.average_rating),
    (_("No-show rate"), "ratio", lambda row: row.no_show_rate),
    (_("Sample submissions"), "number", lambda row: row.sample_requests),
    (_("Samples"), "number", lambda row: row.samples),
    (_("Average turnaround (days)"), "number", lambda row: row.average_turnaround_days),
]


def _sums() -> dict:
    return {f"sum_{name}": Sum(name) for name in SUMMED}


def _grouped(queryset: QuerySet, key: str | None, **aggregates) -> dict:
    """``{group: {measure: value}}``. Aliases carry a ``sum_`` prefix (an alias may not shadow a field)."""
    if key is None:
        rows = {None: queryset.aggregate(**aggregates)}
    else:
        rows = {row.pop(key): row for row in queryset.order_by().values(key).annotate(**aggregates)}
    return {group: {name.removeprefix("sum_"): value for name, value in row.items()} for group, row in rows.items()}


def _fill(row: StatRow, *parts: dict) -> StatRow:
    for part in parts:
        for name, value in part.items():
            if value is not None and hasattr(row, name):
                setattr(row, name, value)
    return row


def summarize(scope: Scope, *, year: int, by: str = "organization", months: tuple[int, int] | None = None,
              organization_id: int | None = None, lab_id: int | None = None, instrument_id: int | None = None,
              today: dt.date | None = None) -> list[StatRow]:
    """Statistics grouped by instrument, lab, organization, category, district or for the city,
    for a year or a range of its months. A handful of GROUP BY queries over the summary tables."""
    key = GROUP_KEYS[by]
    where = narrowed(scope, organization_id=organization_id, lab_id=lab_id, instrument_id=instrument_id) & Q(year=year)
    in_months = Q(month__gte=months[0], month__lte=months[1]) if months else Q()
    factor = months_fraction(year, *months) if months else year_fraction(year, today=today)
    base = InstrumentYearStat.objects.filter(where)
    instruments = _grouped(base, key, sum_instruments=Count("id"), sum_quota_hours=Sum("quota_hours"),
                           **({} if months else _sums()))
    measures = _grouped(InstrumentMonthStat.objects.filter(where & in_months), key, **_sums()) if months \
        else instruments
    people_served = _grouped(
        InstrumentMonthUser.objects.filter(where & in_months), key, sum_users=Count("user_id", distinct=True),
        sum_external_users=Count("user_id", distinct=True, filter=Q(is_external=True)),
        sum_external_organizations=Count("user_organization_id", distinct=True, filter=Q(is_external=True)))
    invoices = _grouped(InstrumentMonthInvoice.objects.filter(where & in_months), key,
                        sum_invoices=Count("invoice_id", distinct=True))
    rows = []
    for group in set(instruments) | set(measures):
        if key is None and not (instruments[None]["instruments"] or measures[None].get("sessions")):
            continue  # nothing in scope at all
        rows.append(_fill(StatRow(key=group, quota_factor=factor), instruments.get(group, {}),
                          measures.get(group, {}), people_served.get(group, {}), invoices.get(group, {})))
    _label(by, rows)
    return sorted(rows, key=lambda row: (-row.effective_minutes, row.label))


def _label(by: str, rows: list[StatRow]) -> None:
    keys = [row.key for row in rows]
    if by == "instrument":
        names = {i["id"]: i for i in Instrument.objects.filter(pk__in=keys).values(
            "id", "name_zh", "asset_number", "organization__name_zh", "lab__name_zh")}
        for row in rows:
            found = names.get(row.key, {})
            row.label = found.get("name_zh", "")
            row.detail = f"{found.get('asset_number', '')} · {found.get('organization__name_zh', '')}"
    elif by == "lab":
        labs = Lab.objects.filter(pk__in=keys).values("id", "name_zh", "organization__name_zh")
        names = {lab["id"]: lab for lab in labs}
        for row in rows:
            row.label = names.get(row.key, {}).get("name_zh", "")
            row.detail = names.get(row.key, {}).get("organization__name_zh", "")
    elif by == "organization":
        names = dict(Organization.objects.filter(pk__in=keys).values_list("id", "name_zh"))
        for row in rows:
            row.label = names.get(row.key, "")
    elif by == "category":
        names = dict(Category.objects.filter(pk__in=keys).values_list("code", "name_zh"))
        for row in rows:
            row.label, row.detail = names.get(row.key, ""), row.key
    elif by == "district":
        for row in rows:
            row.label = row.key or str(_("Unknown district"))
    else:
        for row in rows:
            row.label = str(_("All in view"))


def one_row(scope: Scope, *, year: int, by: str, key, months=None, today: dt.date | None = None) -> StatRow:
    """One instrument's, lab's or organization's statistics (zeros when it has none that year)."""
    filters = {"instrument": {"instrument_id": key}, "lab": {"lab_id": key},
               "organization": {"organization_id": key}}[by]
    rows = summarize(scope, year=year, by=by, months=months, today=today, **filters)
    found = next((row for row in rows if row.key == key), None)
    if found is None:
        found = StatRow(key=key)
        _label(by, [found])
    return found


def monthly(scope: Scope, *, year: int, organization_id: int | None = None, lab_id: int | None = None) -> list[dict]:
    """Effective and external hours, sessions and income for each month of the year."""
    where = narrowed(scope, organization_id=organization_id, lab_id=lab_id) & Q(year=year)
    found = _grouped(InstrumentMonthStat.objects.filter(where), "month", **_sums())
    result = []
    for month in range(1, 13):
        row = _fill(StatRow(key=month), found.get(month, {}))
        result.append({"month": month, "effective_hours": row.effective_hours, "external_hours": row.external_hours,
                       "sessions": row.sessions, "income": row.income, "share_rate": row.share_rate})
    return result


# --- distributions, top and idle ------------------------------------------------------------------

UTILIZATION_BUCKETS = [
    (Decimal("0.10"), "0–10%"), (Decimal("0.25"), "10–25%"), (Decimal("0.50"), "25–50%"),
    (Decimal("0.75"), "50–75%"), (Decimal("1.00"), "75–100%"),
]
OVER_FULL = "≥100%"
SCALE = 10_000  # exact integer arithmetic in SQL: minutes × SCALE against quota hours × 60 × share × SCALE


def _below(share: Decimal, factor: Decimal) -> Q:
    """Year rows whose effective minutes are below ``share`` of their (pro rata) quota."""
    return Q(scaled__lt=Cast("quota_hours", BigIntegerField()) * int(60 * SCALE * share * factor))


def _year_rows(scope: Scope, *, year: int, organization_id=None, lab_id=None) -> QuerySet[InstrumentYearStat]:
    return InstrumentYearStat.objects.filter(
        narrowed(scope, organization_id=organization_id, lab_id=lab_id), year=year,
    ).annotate(scaled=Cast("effective_minutes", BigIntegerField()) * SCALE)


def utilization_distribution(scope: Scope, *, year: int, organization_id=None, lab_id=None,
                             today: dt.date | None = None) -> list[tuple[str, int]]:
    factor = year_fraction(year, today=today) or Decimal(1)
    bucket = Case(*[When(_below(upper, factor), then=Value(index)) for index, (upper, _label) in
                    enumerate(UTILIZATION_BUCKETS)], default=Value(len(UTILIZATION_BUCKETS)),
                  output_field=IntegerField())
    counts = dict(_year_rows(scope, year=year, organization_id=organization_id, lab_id=lab_id)
                  .annotate(bucket=bucket).order_by().values("bucket").annotate(n=Count("id"))
                  .values_list("bucket", "n"))
    labels = [label for _upper, label in UTILIZATION_BUCKETS] + [OVER_FULL]
    return [(label, counts.get(index, 0)) for index, label in enumerate(labels)]


def _instrument_rows(queryset: QuerySet, factor: Decimal) -> list[StatRow]:
    rows = []
    for stat in queryset.select_related("instrument", "organization"):
        row = StatRow(key=stat.instrument_id, label=stat.instrument.name_zh,
                      detail=f"{stat.instrument.asset_number} · {stat.organization.name_zh}", instruments=1,
                      quota_factor=factor)
        for name in (*SUMMED, "quota_hours"):
            setattr(row, name, getattr(stat, name))
        rows.append(row)
    return rows


def top_instruments(scope: Scope, *, year: int, limit: int | None = 10, organization_id=None, lab_id=None,
                    today: dt.date | None = None) -> list[StatRow]:
    queryset = _year_rows(scope, year=year, organization_id=organization_id, lab_id=lab_id) \
        .filter(effective_minutes__gt=0).order_by("-effective_minutes", "instrument_id")
    return _instrument_rows(queryset[:limit] if limit else queryset, year_fraction(year, today=today))


def idle_instruments(scope: Scope, *, year: int, limit: int | None = 10, organization_id=None, lab_id=None,
                     today: dt.date | None = None) -> tuple[list[StatRow], int]:
    """Instruments below the idle utilization (``OVERSIGHT_IDLE_UTILIZATION``), least used first, and how many."""
    factor = year_fraction(year, today=today) or Decimal(1)
    queryset = _year_rows(scope, year=year, organization_id=organization_id, lab_id=lab_id) \
        .filter(_below(Decimal(setting("OVERSIGHT_IDLE_UTILIZATION")), factor)) \
        .order_by("effective_minutes", "instrument_id")
    return _instrument_rows(queryset[:limit] if limit else queryset, factor), queryset.count()


def external_users_by_district(scope: Scope, *, year: int, organization_id=None, lab_id=None) -> list[dict]:
    """Distinct external users (and their organizations) by the district of the user's organization."""
    rows = InstrumentMonthUser.objects.filter(
        narrowed(scope, organization_id=organization_id, lab_id=lab_id), year=year, is_external=True,
    ).order_by().values("user_district").annotate(
        users=Count("user_id", distinct=True), organizations=Count("user_organization_id", distinct=True),
    ).order_by("-users", "user_district")
    return [{"district": row["user_district"] or str(_("Unknown district")), "users": row["users"],
             "organizations": row["organizations"]} for row in rows]


# --- compliance (catalog's report, read here) --------------------------------------------------


# The dashboard's compliance panel reads every mandatory instrument of the city (10^4 of them), so
# its answer is cached; any change to an instrument, an exemption, a lab or an organization moves
# the version below (oversight.apps connects the signals), and the date is in the key.
logger = logging.getLogger(__name__)
COMPLIANCE_VERSION_KEY = "oversight:compliance-version"
CACHE_SECONDS = 600


def compliance_version() -> int:
    return cache.get_or_set(COMPLIANCE_VERSION_KEY, 1, None)


def compliance_changed(**_signal) -> None:
    """Called on every write that can change compliance: it must never fail the write. With the cache
    (Redis) down the version cannot move; answers cached before stay at most CACHE_SECONDS."""
    try:
        try:
            cache.incr(COMPLIANCE_VERSION_KEY)
        except ValueError:  # not set yet (or evicted): any new value is a new version
            cache.set(COMPLIANCE_VERSION_KEY, int(time.time()), None)
    except CACHE_DOWN as error:
        logger.warning("compliance cache version not moved: the cache is unavailable (%s)", error)


def scope_key(scope: Scope) -> str:
    if scope.everything:
        return "all"
    return f"o{','.join(map(str, sorted(scope.organization_ids)))}l{','.join(map(str, sorted(scope.lab_ids)))}"


# The compliance panel of the dashboard: its first rows.
COMPLIANCE_ROWS = 20


def non_compliant_page(user, scope: Scope, *, organization_id: int | None = None, lab_id: int | None = None,
                       limit: int = COMPLIANCE_ROWS) -> tuple[list, int]:
    """The first ``limit`` non-compliant instruments in view (narrowed to an organization or lab), and how many."""
    key = (f"oversight:non-compliant:{compliance_version()}:{timezone.localdate()}:{scope_key(scope)}:"
           f"{organization_id}:{lab_id}:{limit}")
    found = cache.get(key)
    if found is None:
        rows = [row for row in non_compliant_instruments(user, scope)
                if (not organization_id or row.instrument.organization_id == organization_id)
                and (not lab_id or row.instrument.lab_id == lab_id)]
        found = (rows[:limit], len(rows))
        cache.set(key, found, CACHE_SECONDS)
    return found


def non_compliant_instruments(user, scope: Scope) -> list:
    """The non-compliant instruments of ``catalog.compliance``'s report (its public ``build_report``),
    within the scope: rows with ``instrument``, ``flags`` and ``flag_labels``."""
    from catalog import compliance

    if scope.empty:
        return []
    organization_ids = None if scope.everything else set(scope.organization_ids) | set(
        Lab.objects.filter(pk__in=scope.lab_ids).values_list("organization_id", flat=True))
    report = compliance.build_report(organization_ids=organization_ids)
    return [row for row in report.rows if scope.sees_instrument(row.instrument)]


# --- the duplicate-purchase check -----------------------------------------------------------------


@dataclass
class PurchaseCheckResult:
    category: Category
    value: Decimal
    year: int
    required: bool
    threshold_value: Decimal
    saturation_hours: int
    rows: list[dict] = field(default_factory=list)
    counted: int = 0
    average_hours: Decimal = ZERO
    saturated: bool = False
    check_id: int | None = None

    def as_dict(self) -> dict:
        return {"category": self.category.pk, "category_name": self.category.name_zh, "value": self.value,
                "year": self.year, "required": self.required, "threshold_value": self.threshold_value,
                "saturation_hours": self.saturation_hours, "instruments": self.rows, "counted": self.counted,
                "average_hours": self.average_hours, "saturated": self.saturated, "check_id": self.check_id}


def purchase_check(user, *, category: Category, value: Decimal, year: int | None = None,
                   today: dt.date | None = None) -> PurchaseCheckResult:
    """The city's instruments of the category with their hours in ``year`` (default: last year).

    The category is saturated when the instruments that existed that year ran, on average, at least
    ``OVERSIGHT_SATURATION_HOURS`` effective hours. Instruments the user may not see in the catalog
    count in the average but are listed without their name.
    """
    today = today or timezone.localdate()
    year = year or today.year - 1
    threshold = Decimal(setting("OVERSIGHT_PURCHASE_CHECK_VALUE"))
    result = PurchaseCheckResult(category=category, value=value, year=year, required=value >= threshold,
                                 threshold_value=threshold, saturation_hours=int(setting("OVERSIGHT_SATURATION_HOURS")))
    stat = InstrumentYearStat.objects.filter(instrument_id=OuterRef("pk"), year=year)
    instruments = Instrument.objects.filter(category=category).annotate(
        minutes=Subquery(stat.values("effective_minutes")[:1]), quota=Subquery(stat.values("quota_hours")[:1]),
    ).values("id", "name_zh", "asset_number", "organization__name_zh", "lab__name_zh", "district", "minutes",
             "quota").order_by("-minutes", "id")
    visible = set(catalog_queries.visible_instruments(user).filter(category=category).values_list("pk", flat=True))
    total = ZERO
    for row in instruments:
        listed = row["id"] in visible
        effective = hours(row["minutes"]) if row["minutes"] is not None else None
        result.rows.append({
            "instrument_id": row["id"] if listed else None,
            "name": row["name_zh"] if listed else str(_("Unlisted instrument")),
            "asset_number": row["asset_number"] if listed else "", "organization": row["organization__name_zh"],
            "lab": row["lab__name_zh"] if listed else "", "district": row["district"], "hours": effective,
            "utilization": ratio(effective, row["quota"]) if effective is not None else None,
        })
        if effective is not None:
            result.counted += 1
            total += effective
    if result.counted:
        result.average_hours = (total / result.counted).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        result.saturated = result.average_hours >= result.saturation_hours
    return result


def purchase_checks_for(user) -> QuerySet[PurchaseCheck]:
    queryset = PurchaseCheck.objects.select_related("lab", "user", "category").order_by("-created_at", "-id")
    if people.is_platform_admin(user):
        return queryset
    return queryset.filter(lab_id__in=people.managed_lab_ids(user))


def may_check_purchases(user) -> bool:
    return people.is_platform_admin(user) or bool(people.managed_lab_ids(user))


# --- evaluation and exports: who reads them ---------------------------------------------------------


def evaluation_organization_ids(user) -> set[int] | None:
    """Whose evaluation the user may read: None means every organization (the bureau)."""
    if people.is_platform_admin(user):
        return None
    return set(people.finance_organization_ids(user))


def visible_exports(user) -> QuerySet[NationalExport]:
    queryset = NationalExport.objects.select_related("organization").order_by("-year", "-quarter",
                                                                               "organization__name_zh")
    scope = evaluation_organization_ids(user)
    return queryset if scope is None else queryset.filter(organization_id__in=scope)


def organizations_in_view(scope: Scope) -> QuerySet[Organization]:
    """Organizations that own instruments, within the scope (for filters)."""
    owners = Instrument.objects.order_by().values("organization_id")
    queryset = Organization.objects.filter(pk__in=owners).order_by("name_zh")
    if scope.everything:
        return queryset
    lab_orgs = Lab.objects.filter(pk__in=scope.lab_ids).values("organization_id")
    return queryset.filter(Q(pk__in=scope.organization_ids) | Q(pk__in=lab_orgs))


def labs_in_view(scope: Scope, organization_id: int | None = None) -> QuerySet[Lab]:
    queryset = Lab.objects.select_related("organization").order_by("organization__name_zh", "name_zh")
    if organization_id:
        queryset = queryset.filter(organization_id=organization_id)
    if scope.everything:
        return queryset
    return queryset.filter(Q(pk__in=scope.lab_ids) | Q(organization_id__in=scope.organization_ids))
