"""Submitting a request, its files, and the requester's rating."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from catalog import queries as catalog_queries
from catalog.models import BookingPolicy, Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound

from ..extensions import completion_parts, request_parts
from ..models import Analysis, Attachment, SampleRequest, SampleService
from .common import can_see, is_lab, is_requester_side, locked_request, moved, snapshot

MAX_TEXT = 4000


def _clean(value: str | None, limit: int = MAX_TEXT) -> str:
    return (value or "").strip()[:limit]


def _sample_instrument(user, instrument_id: int) -> Instrument:
    instrument = (Instrument.objects.select_for_update(no_key=True, of=("self",))
                  .select_related("policy", "lab").filter(pk=instrument_id).first())
    if instrument is None or not catalog_queries.can_see(user, instrument):
        raise NotFound("not_found", "No such instrument.")
    allowed, reason = catalog_queries.may_book(user, instrument)
    if not allowed:
        raise Forbidden(reason, "You may not send samples to this instrument.")
    # Sample mode, or a bookable instrument whose lab also offers analyses on samples sent in.
    if instrument.policy.mode != BookingPolicy.Mode.SAMPLES and not instrument.analyses.filter(is_active=True).exists():
        raise Invalid("not_sample_mode", "This instrument is booked by time; its lab offers no sample service.")
    return instrument


def _checked_hazards(hazards: list[str], safety_statement: str) -> list[str]:
    known = set(SampleRequest.Hazard.values)
    unknown = sorted(set(hazards) - known)
    if unknown:
        raise Invalid("unknown_hazard", f"Unknown hazards: {', '.join(unknown)}; use {', '.join(sorted(known))}.")
    if hazards and not safety_statement:
        raise Invalid("safety_statement_required",
                      "Hazardous samples need the safety statement the lab asks for (handling, protection, disposal).")
    return sorted(set(hazards))


def _checked_analyses(instrument: Instrument, analysis_ids: list[int]) -> list[Analysis]:
    if not analysis_ids:
        raise Invalid("analyses_required", "Choose at least one analysis from the lab's list.")
    analyses = list(Analysis.objects.filter(instrument=instrument, is_active=True, pk__in=set(analysis_ids)))
    if len(analyses) != len(set(analysis_ids)):
        raise Invalid("unknown_analysis", "Choose analyses this instrument offers.")
    return analyses


def _charged_lab_id(user, lab_id: int | None) -> int | None:
    lab_ids = people.member_lab_ids(user)
    if lab_id is not None:
        if lab_id not in lab_ids:
            raise Forbidden("account_not_allowed", "You may only charge a lab you belong to.")
        return lab_id
    return min(lab_ids) if lab_ids else None


def service_of(instrument: Instrument) -> SampleService:
    """The instrument's sample service, or the defaults when the lab has set none."""
    return SampleService.objects.filter(instrument=instrument).first() or SampleService(instrument=instrument)


@transaction.atomic
def create_request(*, user, instrument_id: int, sample_count: int, sample_type: str, sample_state: str,
                   analysis_ids: list[int], hazards: list[str] | None = None, safety_statement: str = "",
                   after_use: str = SampleRequest.AfterUse.DISPOSE, note: str = "", lab_id: int | None = None,
                   extras: dict | None = None, now: dt.datetime | None = None) -> SampleRequest:
    """Send samples to an instrument in sample mode. ``extras`` carries the fields apps above add
    (billing's ``account_id``: see ``submissions.extensions.request_parts``)."""
    now = now or timezone.now()
    instrument = _sample_instrument(user, instrument_id)
    service = service_of(instrument)
    if not 1 <= sample_count <= service.max_samples:
        raise Invalid("invalid_sample_count", f"Send between 1 and {service.max_samples} samples per request.")
    if not _clean(sample_type, 200):
        raise Invalid("sample_type_required", "Say what the samples are.")
    if sample_state not in SampleRequest.SampleState.values:
        raise Invalid("invalid_sample_state", f"The sample state is one of {', '.join(SampleRequest.SampleState)}.")
    if after_use not in SampleRequest.AfterUse.values:
        raise Invalid("invalid_after_use", "Say whether the samples are returned or disposed of.")
    safety_statement = _clean(safety_statement)
    hazards = _checked_hazards(hazards or [], safety_statement)
    analyses = _checked_analyses(instrument, analysis_ids)
    charged_lab_id = _charged_lab_id(user, lab_id)
    parts = [(part, part.prepare(user=user, instrument=instrument, extras=extras or {}))
             for part in request_parts.contributions]
    request = SampleRequest.objects.create(
        instrument=instrument, requester=user, charged_lab_id=charged_lab_id,
        is_internal=catalog_queries.is_internal_user(user, instrument), sample_count=sample_count,
        sample_type=_clean(sample_type, 200), sample_state=sample_state, hazards=hazards,
        safety_statement=safety_statement, after_use=after_use, note=_clean(note), submitted_at=now,
    )
    request.analyses.set(analyses)
    audited = {"analysis_ids": sorted(a.pk for a in analyses)}
    for part, state in parts:   # the higher apps' rows, in this transaction; their fields join the audit record
        audited.update(part.save(request=request, state=state) or {})
    return moved(request, "submitted", actor=user, before={}, now=now, **audited)


# --- files ----------------------------------------------------------------------------------------

# Trust the bytes, not the file name: what each accepted type starts with, and the names it may carry.
SIGNATURES: tuple[tuple[bytes, str, frozenset[str]], ...] = (
    (b"%PDF-", "application/pdf", frozenset({"pdf"})),
    (b"\x89PNG\r\n\x1a\n", "image/png", frozenset({"png"})),
    (b"\xff\xd8\xff", "image/jpeg", frozenset({"jpg", "jpeg"})),
    (b"II*\x00", "image/tiff", frozenset({"tif", "tiff"})),
    (b"MM\x00*", "image/tiff", frozenset({"tif", "tiff"})),
    (b"PK\x03\x04", "application/zip", frozenset({"zip", "xlsx", "docx"})),
)
TEXT_EXTENSIONS = frozenset({"txt", "csv", "xy", "dat", "jdx", "cif"})


def file_type(name: str, content: bytes) -> tuple[str, str]:
    """(content type, extension) of an accepted file, or a 422 naming what is accepted."""
    extension = os.path.splitext(name)[1].lower().lstrip(".")
    for signature, content_type, extensions in SIGNATURES:
        if content.startswith(signature):
            if extension not in extensions:
                break
            return content_type, extension
    else:
        if extension in TEXT_EXTENSIONS and b"\x00" not in content[:8192]:
            try:
                content[:8192].decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                return "text/plain", extension
    raise Invalid("invalid_file_type", "Files may be PDF, PNG, JPEG, TIFF, ZIP, XLSX, DOCX or UTF-8 text "
                                       "(TXT, CSV, XY, DAT, JDX, CIF), and their name must match their content.")


def _safe_name(name: str) -> str:
    name = os.path.basename((name or "").replace("\\", "/")).strip()
    return "".join(ch for ch in name if ch.isprintable())[:200] or "file"


REQUESTER_FILE_STATES = (SampleRequest.State.SUBMITTED, SampleRequest.State.QUOTED, SampleRequest.State.ACCEPTED)
RESULT_FILE_STATES = (SampleRequest.State.IN_PROGRESS, SampleRequest.State.DELIVERED)


@transaction.atomic
def add_attachment(*, actor, request_id: int, name: str, content: bytes,
                   now: dt.datetime | None = None) -> Attachment:
    """The requester attaches a file before the samples arrive; the lab uploads results while it works.
    Size-limited, type-checked by content, stored privately under a name nobody chooses."""
    now = now or timezone.now()
    request = locked_request(actor, request_id)
    if is_lab(actor, request) and request.state in RESULT_FILE_STATES:
        kind = Attachment.Kind.RESULT
    elif is_requester_side(actor, request) and request.state in REQUESTER_FILE_STATES:
        kind = Attachment.Kind.REQUEST
    elif is_lab(actor, request) or is_requester_side(actor, request):
        raise Conflict("invalid_state", "The requester adds files before the samples arrive; the lab adds "
                                        "result files while the work is in progress or delivered.")
    else:
        raise Forbidden("forbidden", "Only the requester and the lab add files.")
    limit = settings.SUBMISSION_FILE_MAX_BYTES
    if len(content) > limit:
        raise Invalid("file_too_large", f"A file may be at most {limit // 2**20} MB.")
    if not content:
        raise Invalid("empty_file", "The file is empty.")
    name = _safe_name(name)
    content_type, extension = file_type(name, content)
    attachment = Attachment(request=request, kind=kind, name=name, content_type=content_type, size=len(content),
                            sha256=hashlib.sha256(content).hexdigest(), uploaded_by=actor, uploaded_at=now)
    attachment.file.save(f"{request.pk}/{secrets.token_hex(16)}.{extension}", ContentFile(content), save=False)
    stored = attachment.file.name
    try:
        attachment.save()
        record(actor=actor, action="submission.file_added", target=request,
               after={"attachment_id": attachment.pk, "kind": kind, "name": name, "size": len(content),
                      "sha256": attachment.sha256}, now=now)
    except Exception:
        attachment.file.storage.delete(stored)   # nothing refers to the stored bytes any more
        raise
    # A rollback further up leaves the file without a row; the row is what grants access, so it is inert.
    return attachment


def attachment_for(user, attachment_id: int) -> Attachment:
    """A file the user may download: the requester's side and the lab; 404 for everyone else."""
    attachment = Attachment.objects.select_related("request__instrument").filter(pk=attachment_id).first()
    if attachment is None or not can_see(user, attachment.request) or not (
            is_requester_side(user, attachment.request) or is_lab(user, attachment.request)):
        raise NotFound("not_found", "No such file.")
    return attachment


# --- rating ---------------------------------------------------------------------------------------


@transaction.atomic
def rate_request(*, user, request_id: int, rating: int, now: dt.datetime | None = None) -> SampleRequest:
    """The requester rates completed work once (1 to 5)."""
    now = now or timezone.now()
    request = locked_request(user, request_id)
    if request.requester_id != user.pk:
        raise Forbidden("forbidden", "Only the requester rates the work.")
    if request.state != SampleRequest.State.COMPLETED:
        raise Conflict("invalid_state", "Only completed work is rated.")
    if not 1 <= int(rating) <= 5:
        raise Invalid("invalid_rating", "A rating is from 1 to 5.")
    if request.rating is not None:
        if request.rating == rating:
            return request   # the same rating again: nothing to do
        raise Conflict("already_rated", "This request has been rated already.")
    before = snapshot(request)
    request.rating, request.rated_at = rating, now
    request.save(update_fields=["rating", "rated_at", "updated_at"])
    record(actor=user, action="submission.rated", target=request, before=before, after=snapshot(request), now=now)
    for part in completion_parts.contributions:
        part.rated(request=request, now=now)
    return request
