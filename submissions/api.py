"""Sample submissions API: the lab's list of analyses and an estimate, requests and every move of their
work, files (private; downloads and signed links for the request's people only), rating."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.http import FileResponse
from django.utils import timezone
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile

from catalog import queries as catalog_queries
from instrumentshare.accounts.ratelimit import export_throttle
from instrumentshare.core.errors import Invalid, NotFound
from instrumentshare.core.schemas import BoundedDate, BoundedDateTime, Money, Percent, StrictSchema

from . import queries, services
from .extensions import request_parts
from .models import Attachment, QuoteItem, SampleRequest

router = Router(tags=["submissions"])

Id = int


# --- schemas --------------------------------------------------------------------------------------


class SampleRequestIn(StrictSchema):
    instrument_id: int
    sample_count: int = Field(..., ge=1, le=10000)
    sample_type: str = Field(..., min_length=1, max_length=200)
    sample_state: SampleRequest.SampleState
    analysis_ids: list[int] = Field(..., min_length=1, max_length=50)
    hazards: list[SampleRequest.Hazard] = Field(default_factory=list, max_length=5)
    safety_statement: str = Field("", max_length=4000)
    after_use: SampleRequest.AfterUse = SampleRequest.AfterUse.DISPOSE
    note: str = Field("", max_length=4000)
    lab_id: int | None = Field(None, description="The lab the work is for; default: the requester's first lab")
    account_id: int | None = Field(None, description="The billing account to charge; default: the requester's "
                                                      "lab cost centre or company payer account")


class SampleItemIn(StrictSchema):
    description: str = Field(..., min_length=1, max_length=300)
    quantity: int = Field(..., ge=1, le=100000)
    unit_price: Money
    unit: QuoteItem.Unit = QuoteItem.Unit.SAMPLE
    analysis_id: int | None = None


class SampleQuoteIn(StrictSchema):
    items: list[SampleItemIn] = Field(..., min_length=1, max_length=100)
    valid_until: BoundedDate
    discount_percent: Percent = Decimal("0")
    note: str = Field("", max_length=2000)


class SampleReasonIn(StrictSchema):
    reason: str = Field("", max_length=2000)


class SampleNoteIn(StrictSchema):
    note: str = Field("", max_length=2000)


class SampleReceiveIn(StrictSchema):
    received_count: int | None = Field(None, ge=0, le=100000, description="Default: the count announced")
    discrepancy: str = Field("", max_length=2000)


class SampleReceiveManyIn(StrictSchema):
    request_ids: list[int] = Field(..., min_length=1, max_length=200)


class SampleScheduleIn(StrictSchema):
    start: BoundedDateTime = Field(..., description="With an offset, e.g. 2026-12-01T09:00:00+08:00")
    end: BoundedDateTime


class SampleRatingIn(StrictSchema):
    rating: int = Field(..., ge=1, le=5)


class SampleServiceIn(StrictSchema):
    turnaround_days: int = Field(..., ge=1, le=365)
    safety_requirements: str = Field("", max_length=4000)
    sample_requirements: str = Field("", max_length=4000)
    max_samples: int = Field(200, ge=1, le=10000)


class SampleAnalysisIn(StrictSchema):
    code: str = Field(..., min_length=1, max_length=30)
    name_zh: str = Field(..., min_length=1, max_length=200)
    name_en: str = Field("", max_length=200)
    price_per_sample: Money = Decimal("0")


class SampleAnalysisOut(Schema):
    id: int
    code: str
    name_zh: str
    name_en: str
    price_per_sample: Decimal


class SampleServiceOut(Schema):
    instrument_id: int
    turnaround_days: int
    safety_requirements: str
    sample_requirements: str
    max_samples: int
    analyses: list[SampleAnalysisOut]


class SampleEstimateLine(Schema):
    analysis_id: int
    name_zh: str
    name_en: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class SampleEstimateOut(Schema):
    lines: list[SampleEstimateLine]
    total: Decimal
    currency: str
    binding: bool


class SampleQuoteItemOut(Schema):
    description: str
    unit: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    analysis_id: int | None


class SampleQuoteOut(Schema):
    valid_until: dt.date
    discount_percent: Decimal
    subtotal: Decimal
    total: Decimal
    currency: str
    note: str
    items: list[SampleQuoteItemOut]
    decided_at: dt.datetime | None

    @staticmethod
    def resolve_items(obj) -> list:
        return list(obj.items.all())


class SampleFileOut(Schema):
    id: int
    kind: str
    name: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: dt.datetime


class SampleEventOut(Schema):
    move: str
    state_from: str
    state_to: str
    note: str
    actor_id: int | None
    created_at: dt.datetime


class SampleRequestOut(Schema):
    id: int
    instrument_id: int
    instrument_name_zh: str
    time_zone: str
    requester_id: int
    charged_lab_id: int | None
    account_id: int | None
    state: str
    sample_count: int
    sample_type: str
    sample_state: str
    hazards: list[str]
    safety_statement: str
    analysis_ids: list[int]
    after_use: str
    note: str
    received_count: int | None
    discrepancy: str
    scheduled_start: dt.datetime | None
    scheduled_end: dt.datetime | None
    due_at: dt.datetime | None
    overdue: bool
    reason: str
    rating: int | None
    submitted_at: dt.datetime
    completed_at: dt.datetime | None

    @staticmethod
    def resolve_instrument_name_zh(obj) -> str:
        return obj.instrument.name_zh

    @staticmethod
    def resolve_time_zone(obj) -> str:
        return obj.instrument.time_zone

    @staticmethod
    def resolve_analysis_ids(obj) -> list[int]:
        return sorted(analysis.pk for analysis in obj.analyses.all())

    @staticmethod
    def resolve_account_id(obj) -> int | None:
        return obj.part_facts.get("account_id")

    @staticmethod
    def resolve_overdue(obj) -> bool:
        return obj.is_overdue()


class SampleRequestDetailOut(SampleRequestOut):
    quote: SampleQuoteOut | None
    files: list[SampleFileOut]
    history: list[SampleEventOut]

    @staticmethod
    def resolve_quote(obj):
        return getattr(obj, "quote", None)

    @staticmethod
    def resolve_files(obj) -> list:
        return list(obj.attachments.all())

    @staticmethod
    def resolve_history(obj) -> list:
        return list(obj.events.all())


class SampleRequestList(Schema):
    count: int
    items: list[SampleRequestOut]


class SampleListParams(Schema):
    role: str = Field("mine", pattern="^(mine|lab)$", description="mine: my requests; lab: my labs' work queue")
    state: SampleRequest.State | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class SampleEstimateParams(Schema):
    instrument_id: int
    sample_count: int = Field(..., ge=1, le=10000)
    analysis_ids: list[int] = Field(..., min_length=1, max_length=50)


class SampleLinkOut(Schema):
    url: str
    expires_at: dt.datetime


class SampleReceivedOut(Schema):
    outcome: dict[int, str]


# --- helpers --------------------------------------------------------------------------------------


def _with_facts(requests: list[SampleRequest]) -> list[SampleRequest]:
    """The higher apps' facts (billing's account), read before answering, in one query per app."""
    facts: dict[int, dict] = {request.pk: {} for request in requests}
    for part in request_parts.contributions:
        for request_id, values in part.facts(requests).items():
            facts.setdefault(request_id, {}).update(values)
    for request in requests:
        request.part_facts = facts.get(request.pk, {})
    return requests


def _detail(user, request_id: int) -> SampleRequest:
    return _with_facts([queries.request_for(user, request_id)])[0]


def _sample_instrument(user, instrument_id: int):
    instrument = catalog_queries.instrument_for(user, instrument_id)
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    return instrument


# --- the lab's list -------------------------------------------------------------------------------


@router.get("/instruments/{instrument_id}/sample-service", response=SampleServiceOut,
            summary="An instrument's sample service: turnaround target, requirements, the analyses offered")
def get_service(request, instrument_id: Id):
    instrument = _sample_instrument(request.auth, instrument_id)
    service = services.service_of(instrument)
    return {"instrument_id": instrument.pk, "turnaround_days": service.turnaround_days,
            "safety_requirements": service.safety_requirements, "sample_requirements": service.sample_requirements,
            "max_samples": service.max_samples, "analyses": list(queries.analyses_of(instrument))}


@router.put("/instruments/{instrument_id}/sample-service", response=SampleServiceOut,
            summary="Set the sample service (the instrument's lab managers)")
def set_service(request, instrument_id: Id, payload: SampleServiceIn):
    services.set_sample_service(actor=request.auth, instrument_id=instrument_id, **payload.model_dump())
    return get_service(request, instrument_id)


@router.post("/instruments/{instrument_id}/analyses", response={201: SampleAnalysisOut},
             summary="Add an analysis to the lab's list (the instrument's lab managers)")
def add_analysis(request, instrument_id: Id, payload: SampleAnalysisIn):
    return Status(201, services.add_analysis(actor=request.auth, instrument_id=instrument_id, **payload.model_dump()))


@router.get("/submissions/estimate", response=SampleEstimateOut, summary="An estimate from the lab's list prices")
def estimate(request, params: Query[SampleEstimateParams]):
    instrument = _sample_instrument(request.auth, params.instrument_id)
    return queries.estimate(instrument, params.analysis_ids, params.sample_count)


# --- requests -------------------------------------------------------------------------------------


@router.post("/submissions", response={201: SampleRequestDetailOut}, summary="Send samples to an instrument")
def create_request(request, payload: SampleRequestIn):
    data = payload.model_dump()
    extras = {"account_id": data.pop("account_id")}
    created = services.create_request(user=request.auth, extras=extras, **data)
    return Status(201, _detail(request.auth, created.pk))


@router.get("/submissions", response=SampleRequestList, summary="My requests, or my labs' work queue (overdue first)")
def list_requests(request, params: Query[SampleListParams]):
    if params.role == "lab":
        queryset = queries.lab_queue(request.auth, state=params.state)
    else:
        queryset = queries.my_requests(request.auth)
        if params.state:
            queryset = queryset.filter(state=params.state)
    items = list(queryset[params.offset: params.offset + params.limit])
    return {"count": queryset.count(), "items": _with_facts(items)}


@router.post("/submissions/receive", response=SampleReceivedOut, summary="Receive many requests as announced (the lab)")
def receive_many(request, payload: SampleReceiveManyIn):
    return {"outcome": services.receive_many(actor=request.auth, request_ids=payload.request_ids)}


@router.get("/submissions/{request_id}", response=SampleRequestDetailOut,
            summary="One request, its quote, files, history")
def get_request(request, request_id: Id):
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/quote", response=SampleRequestDetailOut, summary="Quote (the lab)")
def quote(request, request_id: Id, payload: SampleQuoteIn):
    items = [services.ItemIn(**item.model_dump()) for item in payload.items]
    services.quote_request(actor=request.auth, request_id=request_id, items=items, valid_until=payload.valid_until,
                           discount_percent=payload.discount_percent, note=payload.note)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/accept", response=SampleRequestDetailOut,
             summary="Accept the quote (the requester, or who decides for the account)")
def accept(request, request_id: Id):
    services.accept_quote(actor=request.auth, request_id=request_id)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/decline", response=SampleRequestDetailOut, summary="Decline the quote")
def decline(request, request_id: Id, payload: SampleReasonIn | None = None):
    services.decline_quote(actor=request.auth, request_id=request_id, reason=payload.reason if payload else "")
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/receive", response=SampleRequestDetailOut,
             summary="Samples received (the lab; a count unlike the one announced needs a note)")
def receive(request, request_id: Id, payload: SampleReceiveIn | None = None):
    payload = payload or SampleReceiveIn()
    services.receive_samples(actor=request.auth, request_id=request_id, received_count=payload.received_count,
                             discrepancy=payload.discrepancy)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/schedule", response=SampleRequestDetailOut,
             summary="Hold instrument time for the work (the lab); a taken time is a 409")
def schedule(request, request_id: Id, payload: SampleScheduleIn):
    services.schedule_work(actor=request.auth, request_id=request_id, start=payload.start, end=payload.end)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/start", response=SampleRequestDetailOut, summary="Work started (the lab)")
def start(request, request_id: Id):
    services.start_work(actor=request.auth, request_id=request_id)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/deliver", response=SampleRequestDetailOut,
             summary="Results delivered (the lab; after uploading result files)")
def deliver(request, request_id: Id, payload: SampleNoteIn | None = None):
    services.deliver_results(actor=request.auth, request_id=request_id, note=payload.note if payload else "")
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/complete", response=SampleRequestDetailOut, summary="Completed")
def complete(request, request_id: Id):
    services.complete_request(actor=request.auth, request_id=request_id)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/cancel", response=SampleRequestDetailOut,
             summary="Cancel (the requester before the samples arrive; the lab with a reason)")
def cancel(request, request_id: Id, payload: SampleReasonIn | None = None):
    services.cancel_request(actor=request.auth, request_id=request_id, reason=payload.reason if payload else "")
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/reject", response=SampleRequestDetailOut,
             summary="Reject with a reason (the lab)")
def reject(request, request_id: Id, payload: SampleReasonIn):
    services.reject_request(actor=request.auth, request_id=request_id, reason=payload.reason)
    return _detail(request.auth, request_id)


@router.post("/submissions/{request_id}/rate", response=SampleRequestDetailOut, summary="Rate completed work, once")
def rate(request, request_id: Id, payload: SampleRatingIn):
    services.rate_request(user=request.auth, request_id=request_id, rating=payload.rating)
    return _detail(request.auth, request_id)


# --- files ----------------------------------------------------------------------------------------


@router.post("/submissions/{request_id}/files", response={201: SampleFileOut},
             summary="Attach a file (the requester before receipt) or upload a result (the lab)")
def upload(request, request_id: Id, file: File[UploadedFile]):
    limit = settings.SUBMISSION_FILE_MAX_BYTES
    if file.size and file.size > limit:
        raise Invalid("file_too_large", f"A file may be at most {limit // 2**20} MB.")
    attachment = services.add_attachment(actor=request.auth, request_id=request_id, name=file.name or "",
                                         content=file.read(limit + 1))
    return Status(201, attachment)


def _attachment(user, request_id: int, file_id: int) -> Attachment:
    attachment = services.attachment_for(user, file_id)
    if attachment.request_id != request_id:
        raise NotFound("not_found", "No such file.")
    return attachment


def file_response(attachment: Attachment) -> FileResponse:
    response = FileResponse(attachment.file.open("rb"), as_attachment=True, filename=attachment.name,
                            content_type=attachment.content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/submissions/{request_id}/files/{file_id}", summary="Download a file (the request's people only)",
            throttle=export_throttle())
def download(request, request_id: Id, file_id: Id):
    return file_response(_attachment(request.auth, request_id, file_id))


LINK_SALT = "submissions.file-link"


@router.post("/submissions/{request_id}/files/{file_id}/link", response=SampleLinkOut,
             summary="A download link that expires (SUBMISSION_LINK_SECONDS), for this user only")
def link(request, request_id: Id, file_id: Id):
    attachment = _attachment(request.auth, request_id, file_id)
    token = signing.TimestampSigner(salt=LINK_SALT).sign_object({"file": attachment.pk, "user": request.auth.pk})
    expires_at = timezone.now() + dt.timedelta(seconds=settings.SUBMISSION_LINK_SECONDS)
    return {"url": f"{settings.SITE_URL}/submissions/files/{token}/", "expires_at": expires_at}
