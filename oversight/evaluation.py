"""The annual open-sharing evaluation of each organization, after the national evaluation's indicators.

Six indicators, each scored 0–100 from the year's summary rows of the organization's instruments:

- open rate: mandatory instruments (publicly funded, from ``MANDATORY_LISTING_VALUE``, not exempted)
  that are listed and shared externally, ÷ all of them (100 when it has none);
- run hours: effective machine hours ÷ the annual quota (pro rata in the current year), capped at 100 %;
- shared hours: the share rate (external ÷ effective hours) ÷ the target share rate, capped;
- external service results: external service records per instrument ÷ the target, capped;
- user ratings: the average satisfaction (1–5) × 20 (no rated service: 0);
- online service platform: instruments listed on the platform ÷ all its instruments.

The score is the weighted mean (``OVERSIGHT_EVALUATION_WEIGHTS``), the grade follows
``OVERSIGHT_GRADE_THRESHOLDS``, and organizations are ranked by score (equal scores share a rank).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext_lazy as _

from instrumentshare.accounts.models import Organization

from .conf import setting
from .models import InstrumentMonthUser, InstrumentYearStat
from .queries import ZERO, hours
from .stats import year_fraction

HUNDRED = Decimal(100)
INDICATORS = [
    ("open_rate", _("Open rate of mandatory instruments")),
    ("run_hours", _("Run hours (utilization)")),
    ("shared_hours", _("Shared hours (share rate)")),
    ("external_results", _("External service results")),
    ("user_ratings", _("User ratings")),
    ("online_platform", _("Online service platform")),
]
GRADES = {"excellent": _("Excellent"), "good": _("Good"), "pass": _("Pass"), "poor": _("Poor")}


def _capped(value: Decimal | None, target: Decimal) -> Decimal:
    if value is None or not target:
        return ZERO
    return min(HUNDRED, value / target * HUNDRED).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _rate(part, whole) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if whole else None


@dataclass
class OrganizationEvaluation:
    organization_id: int
    name: str
    instruments: int = 0
    mandatory: int = 0
    open_mandatory: int = 0
    published: int = 0
    effective_minutes: int = 0
    external_minutes: int = 0
    quota_hours: int = 0
    quota_factor: Decimal = Decimal(1)
    service_records: int = 0
    external_service_records: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    income: Decimal = ZERO
    external_income: Decimal = ZERO
    voucher_amount: Decimal = ZERO
    external_organizations: int = 0
    values: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    score: Decimal = ZERO
    grade: str = "poor"
    rank: int = 0

    @property
    def grade_label(self) -> str:
        return str(GRADES[self.grade])

    @property
    def effective_hours(self) -> Decimal:
        return hours(self.effective_minutes)

    @property
    def external_hours(self) -> Decimal:
        return hours(self.external_minutes)

    def indicator_rows(self) -> list[dict]:
        return [{"code": code, "label": str(label), "value": self.values.get(code), "score": self.scores.get(code)}
                for code, label in INDICATORS]

    def as_dict(self) -> dict:
        return {
            "organization_id": self.organization_id, "organization": self.name, "rank": self.rank,
            "score": str(self.score), "grade": self.grade, "instruments": self.instruments,
            "mandatory": self.mandatory, "open_mandatory": self.open_mandatory, "published": self.published,
            "effective_hours": str(self.effective_hours), "external_hours": str(self.external_hours),
            "service_records": self.service_records, "external_service_records": self.external_service_records,
            "income": str(self.income), "external_income": str(self.external_income),
            "external_organizations": self.external_organizations,
            "indicators": {code: {"value": None if self.values.get(code) is None else str(self.values[code]),
                                  "score": str(self.scores[code])} for code, _label in INDICATORS},
        }


def _score(row: OrganizationEvaluation) -> None:
    targets = setting("OVERSIGHT_EVALUATION_TARGETS")
    due = Decimal(row.quota_hours) * row.quota_factor
    row.values = {
        "open_rate": _rate(row.open_mandatory, row.mandatory),
        "run_hours": _rate(Decimal(row.effective_minutes) / 60, due),
        "shared_hours": _rate(row.external_minutes, row.effective_minutes),
        "external_results": _rate(row.external_service_records, row.instruments),
        "user_ratings": _rate(row.rating_sum, row.rating_count),
        "online_platform": _rate(row.published, row.instruments),
    }
    row.scores = {
        "open_rate": HUNDRED if row.mandatory == 0 else _capped(row.values["open_rate"], Decimal(1)),
        "run_hours": _capped(row.values["run_hours"], Decimal(1)),
        "shared_hours": _capped(row.values["shared_hours"], Decimal(str(targets["share_rate"]))),
        "external_results": _capped(row.values["external_results"],
                                    Decimal(str(targets["external_services_per_instrument"]))),
        "user_ratings": _capped(row.values["user_ratings"], Decimal(5)),
        "online_platform": _capped(row.values["online_platform"], Decimal(1)),
    }
    weights = {code: Decimal(str(weight)) for code, weight in setting("OVERSIGHT_EVALUATION_WEIGHTS").items()}
    total = sum(weights.values()) or Decimal(1)
    row.score = (sum(row.scores[code] * weights.get(code, ZERO) for code, _label in INDICATORS) / total) \
        .quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    row.grade = grade_for(row.score)


def grade_for(score: Decimal) -> str:
    thresholds = setting("OVERSIGHT_GRADE_THRESHOLDS")
    for grade in ("excellent", "good", "pass"):
        if score >= Decimal(str(thresholds[grade])):
            return grade
    return "poor"


def evaluate(*, year: int, organization_ids: set[int] | None = None,
             today: dt.date | None = None) -> list[OrganizationEvaluation]:
    """Every organization with instruments that year, scored and ranked; then narrowed to
    ``organization_ids`` (None: all), so an organization sees its own rank among all."""
    factor = year_fraction(year, today=today)
    rows = InstrumentYearStat.objects.filter(year=year).order_by().values("organization_id").annotate(
        n_instruments=Count("id"), n_mandatory=Count("id", filter=Q(is_mandatory=True)),
        n_open=Count("id", filter=Q(is_mandatory=True, is_open=True)),
        n_published=Count("id", filter=Q(is_published=True)), quota=Sum("quota_hours"),
        effective=Sum("effective_minutes"), external=Sum("external_minutes"), records=Sum("service_records"),
        external_records=Sum("external_service_records"), ratings=Sum("rating_sum"), rated=Sum("rating_count"),
        money_in=Sum("income"), money_out=Sum("external_income"), vouchers=Sum("voucher_amount"))
    external_organizations = dict(InstrumentMonthUser.objects.filter(year=year, is_external=True).order_by()
                                  .values("organization_id").annotate(n=Count("user_organization_id", distinct=True))
                                  .values_list("organization_id", "n"))
    rows = list(rows)
    names = dict(Organization.objects.filter(pk__in=[r["organization_id"] for r in rows]).values_list("id", "name_zh"))
    result = []
    for row in rows:
        evaluation = OrganizationEvaluation(
            organization_id=row["organization_id"], name=names.get(row["organization_id"], ""),
            instruments=row["n_instruments"], mandatory=row["n_mandatory"], open_mandatory=row["n_open"],
            published=row["n_published"], effective_minutes=row["effective"] or 0,
            external_minutes=row["external"] or 0, quota_hours=row["quota"] or 0, quota_factor=factor,
            service_records=row["records"] or 0, external_service_records=row["external_records"] or 0,
            rating_sum=row["ratings"] or 0, rating_count=row["rated"] or 0, income=row["money_in"] or ZERO,
            external_income=row["money_out"] or ZERO, voucher_amount=row["vouchers"] or ZERO,
            external_organizations=external_organizations.get(row["organization_id"], 0))
        _score(evaluation)
        result.append(evaluation)
    result.sort(key=lambda e: (-e.score, e.name))
    for position, evaluation in enumerate(result, start=1):
        previous = result[position - 2] if position > 1 else None
        evaluation.rank = previous.rank if previous and previous.score == evaluation.score else position
    if organization_ids is not None:
        result = [e for e in result if e.organization_id in organization_ids]
    return result
