"""The oversight API (/api/v1/oversight): sharing statistics, charts, the evaluation, purchase checks,
national exports. Everything is scoped like the pages: the bureau sees all, a finance officer their
organizations, a lab manager their labs; what the caller may not see is 404, never an empty 200.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from ninja import Field, Query, Router, Schema, Status

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab
from instrumentshare.accounts.ratelimit import export_throttle
from instrumentshare.core.errors import Forbidden, Invalid, NotFound
from instrumentshare.core.schemas import PositiveAssetValue, StrictSchema

from . import charts, evaluation, queries, services
from .models import StatRefresh
from .queries import Scope

router = Router(tags=["oversight"])
Dimension = Literal["instrument", "lab", "organization", "category", "district", "city"]
ChartKey = Literal["utilization", "monthly", "share", "top", "idle", "districts"]


# --- schemas ------------------------------------------------------------------------------------


class StatOut(Schema):
    key: str
    label: str
    detail: str
    instruments: int
    quota_hours: int
    sessions: int
    use_hours: Decimal
    effective_hours: Decimal = Field(description="Use plus the warm-up and post-processing allowance per session.")
    external_hours: Decimal
    share_rate: Decimal | None = Field(description="External hours ÷ effective hours (0–1).")
    utilization: Decimal | None = Field(description="Effective hours ÷ the annual quota, pro rata this year (0–1+).")
    users: int
    external_users: int
    external_organizations: int
    service_records: int
    external_service_records: int
    income: Decimal
    external_income: Decimal
    invoices: int
    voucher_amount: Decimal
    average_rating: Decimal | None
    rating_count: int
    settled_bookings: int
    no_shows: int
    no_show_rate: Decimal | None
    sample_requests: int = Field(description="Sample submissions completed.")
    samples: int = Field(description="Samples received in those submissions.")
    average_turnaround_days: Decimal | None = Field(description="Receipt of the samples to results delivered.")


class StatFilters(StrictSchema):
    year: int | None = Field(None, ge=2000, le=2100)
    by: Dimension = "organization"
    month: int | None = Field(None, ge=1, le=12)
    organization: int | None = None
    lab: int | None = None
    limit: int = Field(1000, ge=1, le=5000, description="Rows per page, the busiest first.")
    offset: int = Field(0, ge=0)


class StatList(Schema):
    count: int
    items: list[StatOut]


class MonthOut(Schema):
    month: int
    effective_hours: Decimal
    external_hours: Decimal
    share_rate: Decimal | None
    sessions: int
    income: Decimal


class DatasetOut(Schema):
    label: str
    data: list[float]


class ChartOut(Schema):
    key: str
    title: str
    kind: str
    labels: list[str]
    datasets: list[DatasetOut]
    horizontal: bool
    percent: bool
    headers: list[str]
    rows: list[list[Any]]
    note: str


class IndicatorOut(Schema):
    value: str | None
    score: str


class EvaluationOut(Schema):
    organization_id: int
    organization: str
    rank: int
    score: str
    grade: Literal["excellent", "good", "pass", "poor"]
    instruments: int
    mandatory: int
    open_mandatory: int
    published: int
    effective_hours: str
    external_hours: str
    service_records: int
    external_service_records: int
    income: str
    external_income: str
    external_organizations: int
    indicators: dict[str, IndicatorOut]


class PurchaseInstrumentOut(Schema):
    instrument_id: int | None
    name: str
    asset_number: str
    organization: str
    lab: str
    district: str
    hours: Decimal | None
    utilization: Decimal | None


class PurchaseCheckOut(Schema):
    category: str
    category_name: str
    value: Decimal
    year: int
    required: bool
    threshold_value: Decimal
    saturation_hours: int
    counted: int
    average_hours: Decimal
    saturated: bool
    check_id: int | None
    instruments: list[PurchaseInstrumentOut]


class PurchaseCheckIn(StrictSchema):
    lab: int
    category: str = Field(min_length=6, max_length=6)
    value: PositiveAssetValue
    year: int | None = Field(None, ge=2000, le=2100)


class ExportOut(Schema):
    id: int
    organization_id: int
    organization: str = Field(alias="organization.name_zh")
    period: str
    created_at: dt.datetime
    digest: str
    instrument_count: int
    service_record_count: int
    transport: str
    destination: str
    sent_at: dt.datetime | None
    last_error: str


class ExportDetailOut(ExportOut):
    payload: dict


class ExportIn(StrictSchema):
    organization_id: int
    period: str = Field(pattern=r"^\d{4}-Q[1-4]$", examples=["2026-Q1"])


class RefreshOut(Schema):
    year: int
    refreshed_at: dt.datetime
    seconds: Decimal
    instruments: int
    month_rows: int


# --- helpers ------------------------------------------------------------------------------------


def _scope(request) -> Scope:
    scope = queries.scope_for(request.user)
    if scope.empty:
        raise NotFound("not_found", "Not found.")
    return scope


def _checked(scope: Scope, organization: int | None, lab: int | None) -> dict:
    """The narrowing asked for, if the caller may see it (404 otherwise)."""
    if organization and not queries.organizations_in_view(scope).filter(pk=organization).exists():
        raise NotFound("not_found", "No such organization.")
    if lab:
        found = Lab.objects.filter(pk=lab).first()
        if found is None or not scope.sees_lab(found):
            raise NotFound("not_found", "No such lab.")
    return {"organization_id": organization, "lab_id": lab}


def _months(month: int | None) -> tuple[int, int] | None:
    if month is None:
        return None
    if not 1 <= month <= 12:
        raise Invalid("invalid_month", "The month is 1 to 12.")
    return month, month


def _year(year: int | None) -> int:
    year = year or queries.current_year()
    if not 2000 <= year <= 2100:
        raise Invalid("invalid_year", "The year must be between 2000 and 2100.")
    return year


# --- statistics ---------------------------------------------------------------------------------


@router.get("/statistics", response=StatList, summary="Statistics grouped by a dimension, the busiest first")
def statistics(request, filters: Query[StatFilters]):
    scope = _scope(request)
    narrowing = _checked(scope, filters.organization, filters.lab)
    months = (filters.month, filters.month) if filters.month else None
    rows = queries.summarize(scope, year=_year(filters.year), by=filters.by, months=months, **narrowing)
    page = rows[filters.offset:filters.offset + filters.limit]
    return {"count": len(rows), "items": [row.as_dict() for row in page]}


@router.get("/statistics/monthly", response=list[MonthOut], summary="Hours and income for each month of a year")
def statistics_monthly(request, year: int | None = None, organization: int | None = None, lab: int | None = None):
    scope = _scope(request)
    return queries.monthly(scope, year=_year(year), **_checked(scope, organization, lab))


@router.get("/instruments/{instrument_id}/statistics", response=StatOut, summary="One instrument's statistics")
def instrument_statistics(request, instrument_id: int, year: int | None = None, month: int | None = None):
    scope = _scope(request)
    instrument = Instrument.objects.filter(pk=instrument_id).first()
    if instrument is None or not scope.sees_instrument(instrument):
        raise NotFound("not_found", "No such instrument.")
    months = _months(month)
    return queries.one_row(scope, year=_year(year), by="instrument", key=instrument_id, months=months).as_dict()


@router.get("/organizations/{organization_id}/statistics", response=StatOut,
            summary="One organization's statistics (what of it the caller may see)")
def organization_statistics(request, organization_id: int, year: int | None = None, month: int | None = None):
    scope = _scope(request)
    _checked(scope, organization_id, None)
    months = _months(month)
    return queries.one_row(scope, year=_year(year), by="organization", key=organization_id, months=months).as_dict()


@router.get("/labs/{lab_id}/statistics", response=StatOut, summary="One lab's statistics")
def lab_statistics(request, lab_id: int, year: int | None = None, month: int | None = None):
    scope = _scope(request)
    _checked(scope, None, lab_id)
    months = _months(month)
    return queries.one_row(scope, year=_year(year), by="lab", key=lab_id, months=months).as_dict()


@router.get("/charts/{key}", response=ChartOut, summary="A dashboard chart's data and table (every row)")
def chart(request, key: ChartKey, year: int | None = None, organization: int | None = None, lab: int | None = None):
    scope = _scope(request)
    view = charts.View(scope=scope, year=_year(year), **_checked(scope, organization, lab))
    return charts.build(key, view, full=True).as_dict()


@router.get("/refreshes", response=list[RefreshOut], summary="When each year's statistics were computed")
def refreshes(request):
    _scope(request)
    return StatRefresh.objects.order_by("-year")


class RefreshIn(StrictSchema):
    year: int = Field(ge=2000, le=2100)


class ProgressOut(Schema):
    year: int
    state: Literal["idle", "queued", "running", "done"]
    done: int = 0
    total: int | None = None
    refreshed_at: dt.datetime | None = None


def _progress(year: int) -> dict:
    progress = queries.refresh_progress(year) or {}
    last = queries.last_refresh(year)
    return {"year": year, "state": progress.get("state", "idle"), "done": progress.get("done") or 0,
            "total": progress.get("total"), "refreshed_at": last.refreshed_at if last else None}


@router.post("/refreshes", response={202: ProgressOut}, summary="Refresh a year's statistics now (the bureau)")
def refresh_now(request, data: RefreshIn):
    _scope(request)  # no view of the statistics: 404; a view but not the bureau: 403
    services.request_refresh(actor=request.user, years=[data.year])
    return Status(202, _progress(data.year))


@router.get("/refreshes/progress", response=ProgressOut, summary="A year's refresh: queued, running, done")
def refresh_state(request, year: int | None = None):
    _scope(request)
    return _progress(_year(year))


# --- evaluation -----------------------------------------------------------------------------------


@router.get("/evaluation", response=list[EvaluationOut], summary="The annual evaluation, ranked")
def evaluation_list(request, year: int | None = None):
    organization_ids = queries.evaluation_organization_ids(request.user)
    if organization_ids is not None and not organization_ids:
        raise NotFound("not_found", "Not found.")
    return [row.as_dict() for row in evaluation.evaluate(year=_year(year), organization_ids=organization_ids)]


# --- duplicate-purchase check -------------------------------------------------------------------


@router.get("/purchase-check", response=PurchaseCheckOut, summary="Check a category before a purchase (not kept)")
def purchase_check(request, category: str, value: PositiveAssetValue, year: int | None = None):
    result = services.check_purchase(actor=request.user, lab_id=None, category_code=category, value=value,
                                     year=year)
    return result.as_dict()


@router.post("/purchase-checks", response={201: PurchaseCheckOut},
             summary="Run and keep a lab's check before a purchase (lab managers)")
def record_purchase_check(request, data: PurchaseCheckIn):
    result = services.check_purchase(actor=request.user, lab_id=data.lab, category_code=data.category,
                                     value=data.value, year=data.year)
    return Status(201, result.as_dict())


# --- national platform exports ------------------------------------------------------------------


@router.get("/exports", response=list[ExportOut], summary="National platform exports")
def exports(request):
    organization_ids = queries.evaluation_organization_ids(request.user)
    if organization_ids is not None and not organization_ids:
        raise NotFound("not_found", "Not found.")
    return queries.visible_exports(request.user)[:500]


@router.get("/exports/{export_id}", response=ExportDetailOut, summary="One export, with every record it contained",
            throttle=export_throttle())
def export_detail(request, export_id: int):
    export = queries.visible_exports(request.user).filter(pk=export_id).first()
    if export is None:
        raise NotFound("not_found", "No such export.")
    return export


@router.post("/exports", response={200: ExportDetailOut, 201: ExportDetailOut},
             summary="Export a quarter of an organization (the bureau); an existing export is returned as it was")
def create_export(request, data: ExportIn):
    if not people.is_platform_admin(request.user):
        if data.organization_id in (queries.evaluation_organization_ids(request.user) or set()):
            raise Forbidden("forbidden", "Only the science bureau exports to the national platform.")
        raise NotFound("not_found", "Not found.")
    export, created = services.export_quarter(actor=request.user, organization_id=data.organization_id,
                                              period=data.period)
    return Status(201 if created else 200, export)
