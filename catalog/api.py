"""The catalog API: finding instruments (anyone), keeping them (their lab's managers), the bureau's report.

Write routes answer 404 for an instrument the caller may not see (another lab's draft) and 403 for
one they see but do not manage. Input schemas name every field a caller may set and forbid the
rest: the lab, the organization, the listing state and the share mode never change through PATCH.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.auth import PUBLIC_AUTH
from instrumentshare.accounts.models import Lab, User
from instrumentshare.accounts.ratelimit import export_throttle
from instrumentshare.core import spreadsheets as sheets
from instrumentshare.core.errors import Forbidden, Invalid, NotFound
from instrumentshare.core.schemas import AssetValue, BoundedDate, BoundedDateTime, StrictSchema
from instrumentshare.core.text import clean_rich_text

from . import compliance, queries, services, spreadsheet
from .hours import format_minute, parse_time
from .models import BookingPolicy, Category, Instrument, ListingChangeRequest

router = Router(tags=["catalog"])

# Ids and pages are bounded so that no number, however large, reaches the database as an overflow.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _caller(request):
    """The authenticated user, or the anonymous user. Bearer auth sets ``request.user`` too."""
    return request.user


# --- output schemas ---------------------------------------------------------------------------


class LabRef(Schema):
    id: int
    code: str
    name_zh: str
    name_en: str


class OrganizationRef(Schema):
    id: int
    name_zh: str
    name_en: str


class CategoryRef(Schema):
    code: str
    name_zh: str
    name_en: str
    level: int


class InstrumentSummaryOut(Schema):
    id: int
    name_zh: str
    name_en: str
    asset_number: str
    model_number: str
    manufacturer: str
    category: CategoryRef
    lab: LabRef
    organization: OrganizationRef
    district: str
    original_value: Decimal
    share_mode: str
    listing_state: str
    status: str
    published_at: datetime | None
    url: str
    photo_url: str | None

    @staticmethod
    def resolve_url(obj) -> str:
        return reverse("catalog:detail", args=[obj.pk])

    @staticmethod
    def resolve_photo_url(obj) -> str | None:
        return obj.photo.url if obj.photo else None


class PolicyOut(Schema):
    mode: str
    slot_minutes: int
    min_minutes: int
    max_minutes: int
    min_notice_minutes: int
    horizon_days: int
    cancellation_window_hours: int
    buffer_minutes: int
    approval: str
    qualification_required: bool
    closed_on_public_holidays: bool
    max_hours_per_user_week: int
    max_hours_per_lab_week: int
    charge_mode: str
    min_charge_minutes: int
    rounding_minutes: int
    no_show_grace_minutes: int
    no_show_charge_percent: int
    late_cancel_charge_percent: int


class OpeningRuleOut(Schema):
    weekday: int = Field(..., description="0 = Monday … 6 = Sunday")
    opens: str
    closes: str

    @staticmethod
    def resolve_opens(obj) -> str:
        return format_minute(obj.open_minute)

    @staticmethod
    def resolve_closes(obj) -> str:
        return format_minute(obj.close_minute)


class OpeningExceptionOut(Schema):
    date: date
    closed: bool
    opens: str | None
    closes: str | None
    reason: str

    @staticmethod
    def resolve_opens(obj) -> str | None:
        return format_minute(obj.open_minute) or None

    @staticmethod
    def resolve_closes(obj) -> str | None:
        return format_minute(obj.close_minute) or None


class DowntimeOut(Schema):
    id: int
    start: datetime
    end: datetime
    kind: str
    reason: str


class DowntimeAddedOut(DowntimeOut):
    bookings: str = Field(..., description="What was done with the affected bookings: cancel, keep or '' (none)")
    affected: list[dict] = Field(..., description="The bookings the downtime affected")

    @staticmethod
    def resolve_bookings(obj) -> str:
        return obj.impact.decision

    @staticmethod
    def resolve_affected(obj) -> list[dict]:
        return [{key: value for key, value in booking.as_dict().items() if key != "user_id"}
                for booking in obj.impact.affected]


class InstrumentOut(InstrumentSummaryOut):
    affiliation: str
    subject_code: str
    source: str
    funded_central: bool
    funded_local: bool
    funded_own: bool
    funded_other: bool
    country: str
    purchase_date: date | None
    acceptance_date: date | None
    purpose: str
    specifications: str = Field(..., description="Rich text: plain text, or HTML limited to b, strong, i, em, u, "
                                "sub, sup, br, p, ul, ol, li without attributes (sanitized)")
    main_functions: str = Field(..., description="Rich text, as specifications")
    service_content: str = Field(..., description="Rich text, as specifications")
    user_requirements: str = Field(..., description="Rich text, as specifications")
    fee_standard: str
    address: str
    room: str
    time_zone: str
    contact_name: str
    contact_phone: str
    contact_email: str
    customs_supervised: bool
    warmup_minutes: int
    postprocessing_minutes: int
    mandatory: bool
    policy: PolicyOut | None
    opening_hours: list[OpeningRuleOut]
    opening_exceptions: list[OpeningExceptionOut] = Field(..., description="Today and later, in the instrument's zone")
    downtime: list[DowntimeOut] = Field(..., description="Current and future downtime")

    @staticmethod
    def resolve_mandatory(obj) -> bool:
        return services.is_mandatory(obj)

    # Sanitized again on the way out, so a row that reached the database by another path is safe too.
    @staticmethod
    def resolve_specifications(obj) -> str:
        return clean_rich_text(obj.specifications)

    @staticmethod
    def resolve_main_functions(obj) -> str:
        return clean_rich_text(obj.main_functions)

    @staticmethod
    def resolve_service_content(obj) -> str:
        return clean_rich_text(obj.service_content)

    @staticmethod
    def resolve_user_requirements(obj) -> str:
        return clean_rich_text(obj.user_requirements)

    @staticmethod
    def resolve_policy(obj):
        return getattr(obj, "policy", None)

    @staticmethod
    def resolve_opening_hours(obj):
        return list(obj.opening_rules.all())

    @staticmethod
    def resolve_opening_exceptions(obj):
        return list(queries.upcoming_exceptions(obj))

    @staticmethod
    def resolve_downtime(obj):
        return list(queries.upcoming_downtime(obj))


class InstrumentPageOut(Schema):
    count: int
    page: int
    page_size: int
    pages: int
    items: list[InstrumentSummaryOut]


class CategoryNode(Schema):
    code: str
    name_zh: str
    name_en: str
    level: int
    parent: str | None
    children: list[CategoryNode] = []


# --- input schemas ----------------------------------------------------------------------------

AffiliationCode = Literal[tuple(Instrument.Affiliation.values)]
SourceCode = Literal[tuple(Instrument.Source.values)]
PurposeCode = Literal[tuple(Instrument.Purpose.values)]
StatusCode = Literal[tuple(Instrument.Status.values)]
ShareModeCode = Literal[tuple(Instrument.ShareMode.values)]


class InstrumentChanges(StrictSchema):
    """The record fields a lab manager may change. Everything is optional; unknown fields are refused."""


    name_zh: str | None = Field(None, min_length=1, max_length=200)
    name_en: str | None = Field(None, max_length=200)
    asset_number: str | None = Field(None, min_length=1, max_length=60)
    affiliation: AffiliationCode | None = None
    category: str | None = Field(None, pattern=r"^\d{6}$", description="6-digit national category code (finest level)")
    subject_code: str | None = Field(None, max_length=3, description="GB/T 13745 first-level code, e.g. 170")
    source: SourceCode | None = None
    funded_central: bool | None = None
    funded_local: bool | None = None
    funded_own: bool | None = None
    funded_other: bool | None = None
    original_value: AssetValue | None = None
    country: str | None = Field(None, max_length=60)
    manufacturer: str | None = Field(None, max_length=200)
    model_number: str | None = Field(None, max_length=120)
    purchase_date: BoundedDate | None = None
    acceptance_date: BoundedDate | None = None
    purpose: PurposeCode | None = None
    specifications: str | None = Field(None, max_length=20000)
    main_functions: str | None = Field(None, max_length=20000)
    service_content: str | None = Field(None, max_length=20000)
    user_requirements: str | None = Field(None, max_length=20000)
    fee_standard: str | None = Field(None, max_length=20000)
    district: str | None = Field(None, max_length=50)
    address: str | None = Field(None, max_length=300)
    room: str | None = Field(None, max_length=60)
    time_zone: str | None = Field(None, max_length=60, description="IANA zone, e.g. Asia/Shanghai")
    contact_name: str | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=40)
    contact_email: str | None = Field(None, max_length=254)
    status: StatusCode | None = None
    customs_supervised: bool | None = None
    warmup_minutes: int | None = Field(None, ge=0, le=24 * 60)
    postprocessing_minutes: int | None = Field(None, ge=0, le=24 * 60)

    def service_fields(self) -> dict:
        fields = self.model_dump(exclude_unset=True, exclude={"lab", "share_mode", "policy", "opening_hours"})
        for name, value in list(fields.items()):
            if value is None and name not in ("purchase_date", "acceptance_date"):
                raise Invalid("invalid", f"{name}: may not be null.")
        if "category" in fields:
            fields["category_id"] = fields.pop("category")
        return fields


class PolicyIn(StrictSchema):
    mode: Literal[tuple(BookingPolicy.Mode.values)] | None = None
    slot_minutes: int | None = Field(None, ge=5, le=1440)
    min_minutes: int | None = Field(None, ge=0)
    max_minutes: int | None = Field(None, ge=1)
    min_notice_minutes: int | None = Field(None, ge=0)
    horizon_days: int | None = Field(None, ge=1, le=730)
    cancellation_window_hours: int | None = Field(None, ge=0)
    buffer_minutes: int | None = Field(None, ge=0, le=1440)
    approval: Literal[tuple(BookingPolicy.Approval.values)] | None = None
    qualification_required: bool | None = None
    closed_on_public_holidays: bool | None = None
    max_hours_per_user_week: int | None = Field(None, ge=0)
    max_hours_per_lab_week: int | None = Field(None, ge=0)
    charge_mode: Literal[tuple(BookingPolicy.ChargeMode.values)] | None = None
    min_charge_minutes: int | None = Field(None, ge=0)
    rounding_minutes: int | None = Field(None, ge=1)
    no_show_grace_minutes: int | None = Field(None, ge=0)
    no_show_charge_percent: int | None = Field(None, ge=0, le=100)
    late_cancel_charge_percent: int | None = Field(None, ge=0, le=100)

    def service_fields(self) -> dict:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class BookingsChoice(StrictSchema):
    """What to do with the bookings a change would affect (``catalog.impact``)."""


    dry_run: bool = Field(False, description="Only list the bookings the change would affect; save nothing")
    bookings: Literal["cancel", "keep"] | None = Field(
        None, description="Affected bookings: cancel them (CANCEL invitations, no penalty, no charge, a rebook "
                          "offer) or keep them flagged for their bookers. Required when any are affected (409 "
                          "bookings_affected otherwise).")
    notice: str = Field("", max_length=2000, description="Your word to the bookers (defaults to the change)")

    def choice(self) -> dict:
        return {"dry_run": self.dry_run, "bookings": self.bookings, "notice": self.notice}


CHOICE_FIELDS = {"dry_run", "bookings", "notice"}


class AffectedBookingOut(Schema):
    id: int
    booker: str
    start: datetime
    end: datetime
    state: str
    why: str = Field(..., description="closed, downtime, not_bookable, not_qualified or duration")


class ImpactOut(Schema):
    dry_run: bool
    decision: str
    affected: list[AffectedBookingOut]


class PolicyChangeIn(PolicyIn, BookingsChoice):

    def service_fields(self) -> dict:
        return {k: v for k, v in self.model_dump(exclude_unset=True, exclude=CHOICE_FIELDS).items() if v is not None}


class OpeningRuleIn(StrictSchema):
    weekday: int = Field(..., ge=0, le=6, description="0 = Monday … 6 = Sunday")
    opens: str = Field(..., pattern=r"^\d{1,2}:\d{2}$", examples=["08:30"])
    closes: str = Field(..., pattern=r"^\d{1,2}:\d{2}$", examples=["17:30"])

    def as_rule(self) -> tuple[int, int, int]:
        return self.weekday, parse_time(self.opens), parse_time(self.closes)


class InstrumentIn(InstrumentChanges):
    lab: str = Field(..., description="The code of a lab you manage")
    name_zh: str = Field(..., min_length=1, max_length=200)
    asset_number: str = Field(..., min_length=1, max_length=60)
    category: str = Field(..., pattern=r"^\d{6}$")
    original_value: AssetValue
    share_mode: ShareModeCode = "external"
    policy: PolicyIn | None = None
    opening_hours: list[OpeningRuleIn] | None = Field(None, description="Weekly hours in the instrument's zone")


class OpeningHoursIn(BookingsChoice):
    rules: list[OpeningRuleIn] = Field(..., max_length=100)


class OpeningExceptionIn(BookingsChoice):
    date: BoundedDate
    closed: bool = True
    opens: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}$")
    closes: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}$")
    reason: str = Field("", max_length=200)


class DowntimeIn(BookingsChoice):
    start: BoundedDateTime = Field(..., description="Without an offset, read in the instrument's zone")
    end: BoundedDateTime
    kind: Literal["planned", "unplanned"] = "planned"
    reason: str = Field(..., min_length=1, max_length=300)


class ShareModeIn(StrictSchema):
    share_mode: ShareModeCode


class ListingRequestIn(StrictSchema):
    kind: Literal["unpublish", "not_shared"]
    justification: str = Field(..., min_length=20, max_length=4000)


class ListingRequestOut(Schema):
    id: int
    instrument_id: int
    instrument_name: str
    kind: str
    justification: str
    state: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str

    @staticmethod
    def resolve_instrument_name(obj) -> str:
        return obj.instrument.name_zh

    @staticmethod
    def resolve_requested_by(obj) -> str:
        return obj.requested_by.username

    @staticmethod
    def resolve_decided_by(obj) -> str | None:
        return obj.decided_by.username if obj.decided_by else None


class DecisionIn(StrictSchema):
    approve: bool
    note: str = Field("", max_length=2000)


class QualificationIn(StrictSchema):
    username: str = Field(..., min_length=1, max_length=150)
    expires_at: BoundedDateTime | None = None
    note: str = Field("", max_length=300)


class QualificationOut(Schema):
    id: int
    instrument_id: int
    username: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    valid: bool
    note: str

    @staticmethod
    def resolve_username(obj) -> str:
        return obj.user.username

    @staticmethod
    def resolve_granted_by(obj) -> str:
        return obj.granted_by.username

    @staticmethod
    def resolve_valid(obj) -> bool:
        return obj.is_valid()


class ReasonIn(StrictSchema):
    reason: str = Field("", max_length=2000)


class RevokeIn(ReasonIn):
    dry_run: bool = Field(False, description="Only list the person's bookings the revocation would affect")
    bookings: Literal["cancel", "keep"] | None = Field(None, description="Cancel or keep (flagged) those bookings")


class TrainingRequestIn(StrictSchema):
    message: str = Field("", max_length=2000)


class TrainingRequestOut(Schema):
    id: int
    instrument_id: int
    instrument_name: str
    username: str
    message: str
    state: str
    created_at: datetime
    decided_at: datetime | None
    decision_note: str
    qualification_id: int | None
    expires_at: datetime | None

    @staticmethod
    def resolve_username(obj) -> str:
        return obj.user.username

    @staticmethod
    def resolve_instrument_name(obj) -> str:
        return obj.instrument.name_zh

    @staticmethod
    def resolve_expires_at(obj) -> datetime | None:
        return obj.qualification.expires_at if obj.qualification_id else None


class TrainingGrantIn(StrictSchema):
    expires_at: BoundedDateTime | None = Field(None, description="When the qualification lapses; none for no expiry")
    note: str = Field("", max_length=300, description="To the requester")


class ImportProblemOut(Schema):
    line: int
    field: str
    message: str


class ImportOut(Schema):
    dry_run: bool
    ok: bool
    rows: int
    valid_rows: int
    imported: int
    instrument_ids: list[int]
    ignored_columns: list[str]
    problems: list[ImportProblemOut]


class ComplianceRowOut(Schema):
    instrument_id: int
    asset_number: str
    name_zh: str
    organization_id: int
    organization: str
    lab_code: str
    original_value: Decimal
    listing_state: str
    share_mode: str
    purchase_date: date | None
    listing_deadline: date | None
    acceptance_date: date | None
    national_report_deadline: date | None
    first_published: date | None
    flags: list[str]
    missing_fields: list[str]
    exemptions: list[str]
    deadline_estimated: bool = Field(..., description="Counted Monday to Friday: no holiday data for that year")


class ComplianceSummaryOut(Schema):
    organization_id: int
    name_zh: str
    name_en: str
    mandatory: int
    flagged: int
    compliant: int
    rate: Decimal


class ComplianceOut(Schema):
    as_of: date
    mandatory_listing_value: Decimal
    listing_deadline_working_days: int
    national_report_value: Decimal
    national_report_working_days: int
    organizations: list[ComplianceSummaryOut]
    rows: list[ComplianceRowOut]


# --- finding instruments ----------------------------------------------------------------------


class SearchParams(Schema):
    q: str = Field("", max_length=200, description="Words in the names, model, manufacturer or functions")
    category: str = Field("", pattern=r"^(\d{6})?$", description="A category code at any level: 010000, 010100, …")
    organization: Id | None = None
    district: str = Field("", max_length=50)
    share_mode: ShareModeCode | Literal[""] = ""
    sort: Literal["name", "value", "newest"] = "name"
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(queries.DEFAULT_PAGE_SIZE, ge=1, le=queries.MAX_PAGE_SIZE)
    free_from: BoundedDateTime | None = Field(None, description="With free_to and free_hours: free in this window")
    free_to: BoundedDateTime | None = None
    free_hours: float | None = Field(None, gt=0, le=24 * 31, description="Contiguous free hours needed")


@router.get("/instruments", auth=PUBLIC_AUTH, response=InstrumentPageOut, summary="Find instruments")
def search(request, params: Query[SearchParams]):
    free_filter = queries.free_time_filter(params.free_from, params.free_to, params.free_hours)
    queryset = queries.search_instruments(
        _caller(request), text=params.q, category=params.category, organization=params.organization,
        district=params.district, share_mode=params.share_mode, sort=params.sort, free_filter=free_filter,
    )
    # What the summary shows, and no more: not the policy, not the rich texts of 20 instruments.
    queryset = queryset.select_related(None).select_related("lab", "organization", "category").only(*_SUMMARY_FIELDS)
    page = queries.paginate(queryset, page=params.page, page_size=params.page_size,
                            count_in_page=free_filter is not None)
    body = {"count": page.count, "page": page.number, "page_size": page.size, "pages": page.pages,
            "items": [_summary(instrument) for instrument in page.items]}
    return HttpResponse(json.dumps(body, cls=DjangoJSONEncoder), content_type="application/json; charset=utf-8")


_SUMMARY_FIELDS = ("name_zh", "name_en", "asset_number", "model_number", "manufacturer", "district",
                   "original_value", "share_mode", "listing_state", "status", "published_at", "photo",
                   "category__code", "category__name_zh", "category__name_en", "category__level", "lab__code",
                   "lab__name_zh", "lab__name_en", "organization__name_zh", "organization__name_en")


def _summary(instrument: Instrument) -> dict:
    """``InstrumentSummaryOut`` of an instrument as plain values, in the schema's order: the search answers
    with them rendered as ninja renders the schema (``tests/catalog``: byte for byte), without validating
    20 instruments' 30 attributes through the schema's getters (a third of a search's CPU)."""
    category, lab, organization = instrument.category, instrument.lab, instrument.organization
    return {
        "id": instrument.pk, "name_zh": instrument.name_zh, "name_en": instrument.name_en,
        "asset_number": instrument.asset_number, "model_number": instrument.model_number,
        "manufacturer": instrument.manufacturer,
        "category": {"code": category.code, "name_zh": category.name_zh, "name_en": category.name_en,
                     "level": category.level},
        "lab": {"id": lab.pk, "code": lab.code, "name_zh": lab.name_zh, "name_en": lab.name_en},
        "organization": {"id": organization.pk, "name_zh": organization.name_zh, "name_en": organization.name_en},
        "district": instrument.district, "original_value": instrument.original_value,
        "share_mode": instrument.share_mode, "listing_state": instrument.listing_state, "status": instrument.status,
        "published_at": instrument.published_at, "url": InstrumentSummaryOut.resolve_url(instrument),
        "photo_url": InstrumentSummaryOut.resolve_photo_url(instrument),
    }


@router.get("/categories", auth=PUBLIC_AUTH, response=list[CategoryNode],
            summary="The national category tree, or the subtree under one code")
def categories(request, parent: str = Query("", pattern=r"^(\d{6})?$")):
    nodes = {c.code: {"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en, "level": c.level,
                      "parent": c.parent_id, "children": []} for c in Category.objects.order_by("code")}
    if parent and parent not in nodes:
        raise NotFound("not_found", "No such category.")
    roots = []
    for node in nodes.values():
        (nodes[node["parent"]]["children"] if node["parent"] else roots).append(node)
    return nodes[parent]["children"] if parent else roots


# --- bulk import and export (before /instruments/{id}, whose path would also match) ------------


def _lab_of_manager(user, code: str) -> Lab:
    if not code:
        managed = list(queries.managed_labs(user)[:2])
        if len(managed) == 1:
            return managed[0]
        raise Invalid("lab_required", "Name the lab (its code): you manage more than one, or none.")
    lab = Lab.objects.filter(code=code).first()
    if lab is None:
        raise NotFound("not_found", "No such lab.")
    return lab


@router.post("/instruments/import", response={200: ImportOut, 201: ImportOut},
             summary="Import instruments from CSV or XLSX: dry run by default, then all or nothing")
def import_file(request, file: File[UploadedFile], lab: str = "", dry_run: bool = True):
    target = _lab_of_manager(request.auth, lab)
    if not people.is_lab_manager(request.auth, target):
        raise Forbidden("forbidden", "Only a manager of this lab may import into it.")
    imported = services.import_instrument_file(actor=request.auth, lab=target, dry_run=dry_run, filename=file.name,
                                               data=file.read(sheets.MAX_UPLOAD_BYTES + 1))
    result = imported.result
    body = {
        "dry_run": result.dry_run, "ok": result.ok, "rows": result.rows, "valid_rows": result.valid_rows,
        "imported": len(result.created), "instrument_ids": [i.pk for i in result.created],
        "ignored_columns": imported.ignored_headers, "problems": imported.problems,
    }
    if not dry_run and not result.ok:
        raise Invalid("import_failed", f"Nothing was imported: {len(result.problems)} problems.",
                      extra={"problems": body["problems"]})
    return Status(200 if dry_run else 201, body)


@router.get("/instruments/export", summary="A lab's instruments as CSV or XLSX, in the import format",
            throttle=export_throttle())
def export_file(request, lab: str = "", format: Literal["csv", "xlsx"] = "csv"):
    target = _lab_of_manager(request.auth, lab)
    if not (people.is_lab_manager(request.auth, target) or people.is_platform_admin(request.auth)):
        raise Forbidden("forbidden", "Only the lab's managers and the bureau may export its records.")
    content = spreadsheet.export_instruments(queries.lab_instruments(target), fmt=format)
    response = HttpResponse(content, content_type=sheets.CONTENT_TYPES[format])
    response["Content-Disposition"] = f'attachment; filename="instruments-{target.code}.{format}"'
    return response


# --- one instrument ---------------------------------------------------------------------------


def _visible(request, instrument_id: Id) -> Instrument:
    instrument = queries.instrument_for(_caller(request), instrument_id)
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    return instrument


def _fresh(instrument_id: Id) -> Instrument:
    return queries.instruments().get(pk=instrument_id)


@router.get("/instruments/{instrument_id}", auth=PUBLIC_AUTH, response=InstrumentOut,
            summary="One instrument: record, rules, opening hours, downtime")
def detail(request, instrument_id: Id):
    return _visible(request, instrument_id)


@router.post("/instruments", response={201: InstrumentOut}, summary="Add an instrument (as a draft) to your lab")
def create(request, payload: InstrumentIn):
    lab = Lab.objects.filter(code=payload.lab).first()
    if lab is None:
        raise NotFound("not_found", "No such lab.")
    policy = payload.policy.service_fields() if payload.policy else None
    hours = [rule.as_rule() for rule in payload.opening_hours] if payload.opening_hours else None
    instrument = services.create_instrument(actor=request.auth, lab=lab, share_mode=payload.share_mode, policy=policy,
                                            opening_hours=hours, **payload.service_fields())
    return Status(201, _fresh(instrument.pk))


@router.patch("/instruments/{instrument_id}", response=InstrumentOut, summary="Change an instrument's record")
def update(request, instrument_id: Id, payload: InstrumentChanges):
    services.update_instrument(actor=request.auth, instrument_id=instrument_id, **payload.service_fields())
    return _fresh(instrument_id)


@router.post("/instruments/{instrument_id}/photo", response=InstrumentOut, summary="Upload a photo (JPEG/PNG/WebP)")
def upload_photo(request, instrument_id: Id, file: File[UploadedFile]):
    if file.size and file.size > services.MAX_PHOTO_BYTES:
        raise Invalid("file_too_large", "A photo may be at most 5 MB.")
    services.set_photo(actor=request.auth, instrument_id=instrument_id,
                       content=file.read(services.MAX_PHOTO_BYTES + 1))
    return _fresh(instrument_id)


@router.post("/instruments/{instrument_id}/publish", response=InstrumentOut, summary="Publish (list) an instrument")
def publish(request, instrument_id: Id):
    services.publish(actor=request.auth, instrument_id=instrument_id)
    return _fresh(instrument_id)


def _impact(impact) -> dict:
    return {"dry_run": impact.dry_run, "decision": impact.decision, "affected": impact.affected}


@router.post("/instruments/{instrument_id}/unpublish", response={200: InstrumentOut | ImpactOut},
             summary="Unpublish a non-mandatory instrument (mandatory ones need an approved request)",
             description="With ``dry_run`` the bookings it would affect and nothing saved; affected bookings need "
                         "``bookings``: cancel or keep.")
def unpublish(request, instrument_id: Id, payload: BookingsChoice | None = None):
    choice = payload.choice() if payload else {}
    result = services.unpublish(actor=request.auth, instrument_id=instrument_id, **choice)
    return _impact(result) if choice.get("dry_run") else _fresh(instrument_id)


@router.post("/instruments/{instrument_id}/share-mode", response=InstrumentOut, summary="Change the share mode")
def share_mode(request, instrument_id: Id, payload: ShareModeIn):
    services.set_share_mode(actor=request.auth, instrument_id=instrument_id, share_mode=payload.share_mode)
    return _fresh(instrument_id)


CHANGE_HELP = ("With ``dry_run`` the answer lists the bookings the change would affect and nothing is saved; "
               "saving a change that affects bookings needs ``bookings``: cancel or keep (409 "
               "``bookings_affected`` with the list otherwise).")


@router.patch("/instruments/{instrument_id}/policy", response={200: PolicyOut | ImpactOut},
              summary="Change the booking rules", description=CHANGE_HELP)
def update_policy(request, instrument_id: Id, payload: PolicyChangeIn):
    result = services.update_policy(actor=request.auth, instrument_id=instrument_id, **payload.choice(),
                                    **payload.service_fields())
    return _impact(result) if payload.dry_run else result


@router.put("/instruments/{instrument_id}/opening-hours", response={200: list[OpeningRuleOut] | ImpactOut},
            summary="Replace the weekly opening hours (in the instrument's zone)", description=CHANGE_HELP)
def set_opening_hours(request, instrument_id: Id, payload: OpeningHoursIn):
    result = services.set_opening_hours(actor=request.auth, instrument_id=instrument_id,
                                        rules=[rule.as_rule() for rule in payload.rules], **payload.choice())
    return _impact(result) if payload.dry_run else result


@router.post("/instruments/{instrument_id}/opening-exceptions", response={200: OpeningExceptionOut | ImpactOut},
             summary="Close a day (a holiday) or open it at other hours", description=CHANGE_HELP)
def set_opening_exception(request, instrument_id: Id, payload: OpeningExceptionIn):
    result = services.set_opening_exception(
        actor=request.auth, instrument_id=instrument_id, date=payload.date, closed=payload.closed,
        open_minute=parse_time(payload.opens) if payload.opens else None,
        close_minute=parse_time(payload.closes) if payload.closes else None, reason=payload.reason,
        **payload.choice(),
    )
    return _impact(result) if payload.dry_run else result


@router.post("/instruments/{instrument_id}/downtime", response={200: ImpactOut, 201: DowntimeAddedOut},
             summary="Add planned maintenance or an unplanned repair", description=CHANGE_HELP)
def add_downtime(request, instrument_id: Id, payload: DowntimeIn):
    instrument = _visible(request, instrument_id)
    start, end = (value if timezone.is_aware(value) else timezone.make_aware(value, instrument.zone)
                  for value in (payload.start, payload.end))
    result = services.add_downtime(actor=request.auth, instrument_id=instrument_id, start=start, end=end,
                                   kind=payload.kind, reason=payload.reason, **payload.choice())
    return _impact(result) if payload.dry_run else Status(201, result)


@router.delete("/instruments/{instrument_id}/downtime/{downtime_id}", response={204: None},
               summary="Remove a downtime")
def cancel_downtime(request, instrument_id: Id, downtime_id: Id):
    services.cancel_downtime(actor=request.auth, instrument_id=instrument_id, downtime_id=downtime_id)
    return Status(204, None)


# --- listing exemptions -------------------------------------------------------------------------


@router.post("/instruments/{instrument_id}/listing-requests", response={201: ListingRequestOut},
             summary="Ask the bureau to exempt an instrument from listing or sharing")
def request_listing_change(request, instrument_id: Id, payload: ListingRequestIn):
    change = services.request_listing_change(actor=request.auth, instrument_id=instrument_id, kind=payload.kind,
                                             justification=payload.justification)
    return Status(201, change)


@router.get("/listing-requests", response=list[ListingRequestOut],
            summary="Exemption requests: all for the bureau, your labs' for a lab manager")
def listing_requests(request, state: Literal["pending", "approved", "rejected", ""] = ""):
    return list(queries.listing_requests_for(request.auth, state=state or None)[:500])


@router.post("/listing-requests/{request_id}/decision", response=ListingRequestOut,
             summary="Approve or reject an exemption (platform administrators)")
def decide_listing_change(request, request_id: Id, payload: DecisionIn):
    change = services.decide_listing_change(actor=request.auth, request_id=request_id, approve=payload.approve,
                                            note=payload.note)
    return ListingChangeRequest.objects.select_related("instrument", "requested_by", "decided_by").get(pk=change.pk)


# --- qualifications and training ---------------------------------------------------------------


@router.get("/instruments/{instrument_id}/qualifications", response=list[QualificationOut],
            summary="Who is trained on this instrument (its lab's managers)")
def qualifications(request, instrument_id: Id):
    instrument = queries.instrument_to_manage(request.auth, instrument_id)
    return list(queries.qualifications_of(instrument))


@router.post("/instruments/{instrument_id}/qualifications", response={201: QualificationOut},
             summary="Record that a user is trained")
def grant_qualification(request, instrument_id: Id, payload: QualificationIn):
    user = User.objects.filter(username=payload.username, is_active=True).first()
    if user is None:
        raise Invalid("unknown_user", "No active user with that username.")
    qualification = services.grant_qualification(actor=request.auth, instrument_id=instrument_id, user=user,
                                                 expires_at=payload.expires_at, note=payload.note)
    return Status(201, qualification)


@router.post("/qualifications/{qualification_id}/revoke", response={200: QualificationOut | ImpactOut},
             summary="Revoke a qualification", description=CHANGE_HELP)
def revoke_qualification(request, qualification_id: Id, payload: RevokeIn):
    result = services.revoke_qualification(actor=request.auth, qualification_id=qualification_id,
                                           reason=payload.reason, dry_run=payload.dry_run, bookings=payload.bookings)
    return _impact(result) if payload.dry_run else result


@router.post("/instruments/{instrument_id}/training-requests", response={201: TrainingRequestOut},
             summary="Ask to be trained on an instrument")
def request_training(request, instrument_id: Id, payload: TrainingRequestIn):
    return Status(201, services.request_training(actor=request.auth, instrument_id=instrument_id,
                                                 message=payload.message))


@router.get("/instruments/{instrument_id}/training-requests", response=list[TrainingRequestOut],
            summary="Open training requests (its lab's managers)")
def training_requests(request, instrument_id: Id):
    instrument = queries.instrument_to_manage(request.auth, instrument_id)
    return list(queries.open_training_requests(instrument))


@router.get("/training-requests", response=list[TrainingRequestOut],
            summary="The training queue: open requests for the instruments of the labs you manage, oldest first")
def training_queue(request):
    return list(queries.training_queue(request.auth)[:500])


@router.post("/training-requests/{training_request_id}/grant", response=TrainingRequestOut,
             summary="Grant a training request: the requester is qualified (until expires_at) and told")
def grant_training(request, training_request_id: Id, payload: TrainingGrantIn):
    return services.grant_training_request(actor=request.auth, training_request_id=training_request_id,
                                           expires_at=payload.expires_at, note=payload.note)


@router.post("/training-requests/{training_request_id}/decline", response=TrainingRequestOut,
             summary="Decline a training request")
def decline_training(request, training_request_id: Id, payload: ReasonIn):
    return services.decline_training_request(actor=request.auth, training_request_id=training_request_id,
                                             reason=payload.reason)


# --- compliance ------------------------------------------------------------------------------


@router.get("/compliance", response=ComplianceOut,
            summary="Mandatory instruments not listed, not shared, late or incomplete, per organization")
def compliance_report(request, organization: Id | None = None):
    scope = queries.compliance_organization_ids(request.auth)
    if scope is not None and not scope:
        raise Forbidden("forbidden", "The compliance report is for the bureau, lab managers and finance officers.")
    if organization is not None:
        if scope is not None and organization not in scope:
            raise Forbidden("forbidden", "You may read only your own organization's report.")
        scope = {organization}
    report = compliance.build_report(organization_ids=scope)
    return {
        "as_of": report.as_of,
        "mandatory_listing_value": settings.MANDATORY_LISTING_VALUE,
        "listing_deadline_working_days": settings.LISTING_DEADLINE_WORKING_DAYS,
        "national_report_value": settings.NATIONAL_REPORT_VALUE,
        "national_report_working_days": settings.NATIONAL_REPORT_WORKING_DAYS,
        "organizations": [{**vars(s), "compliant": s.compliant, "rate": s.rate} for s in report.summaries],
        "rows": [_compliance_row(row) for row in report.rows],
    }


def _compliance_row(row: compliance.ComplianceRow) -> dict:
    instrument = row.instrument
    return {
        "instrument_id": instrument.pk, "asset_number": instrument.asset_number, "name_zh": instrument.name_zh,
        "organization_id": instrument.organization_id, "organization": instrument.organization.name_zh,
        "lab_code": instrument.lab.code, "original_value": instrument.original_value,
        "listing_state": instrument.listing_state, "share_mode": instrument.share_mode,
        "purchase_date": instrument.purchase_date, "listing_deadline": row.city_due,
        "acceptance_date": instrument.acceptance_date, "national_report_deadline": row.national_due,
        "first_published": row.published_on, "flags": row.flags, "missing_fields": row.missing,
        "exemptions": row.exemptions, "deadline_estimated": row.estimated,
    }
