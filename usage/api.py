"""Usage API: logger ingest (per-instrument token), check-in/out, logger tokens, review, ratings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Field, File, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.security import HttpBearer
from pydantic import model_validator

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.core.errors import NotFound
from instrumentshare.core.schemas import BoundedDateTime, StrictSchema
from instrumentshare.core.spreadsheets import MAX_UPLOAD_BYTES
from instrumentshare.core.time import MAX_DURATION

from .models import ReviewFlag
from .services import logbook, review, sessions

router = Router(tags=["usage"])


class LoggerAuth(HttpBearer):
    """A logger token: accepted here and nowhere else."""

    def authenticate(self, request: HttpRequest, token: str):
        return sessions.instrument_for_logger_token(token)


class EventIn(StrictSchema):
    event_id: str = Field(..., min_length=1, max_length=100, description="The logger's own id: resends are ignored")
    type: Literal["start", "stop", "session"]
    session_id: str = Field(..., min_length=1, max_length=100)
    at: BoundedDateTime | None = Field(None, description="For start and stop events")
    start: BoundedDateTime | None = Field(None, description="For whole sessions")
    end: BoundedDateTime | None = None
    user: str | None = Field(None, max_length=150, description="The platform username, if the logger knows it: "
                             "a member of the instrument's lab, someone qualified on it or who booked it")
    samples: int | None = Field(None, ge=0, le=100_000)

    @model_validator(mode="after")
    def times_fit_the_type(self):
        for value in (self.at, self.start, self.end):
            if value is not None and value.utcoffset() is None:
                raise ValueError("times need an offset, e.g. 2026-12-01T09:00:00+08:00")
        if self.type in ("start", "stop") and self.at is None:
            raise ValueError(f"a {self.type} event needs 'at'")
        if self.type == "session" and (self.start is None or self.end is None or self.start > self.end):
            raise ValueError("a session needs 'start' before 'end'")
        if self.type == "session" and self.end - self.start > MAX_DURATION["usage_session"]:
            raise ValueError(f"a session lasts at most {MAX_DURATION['usage_session'].days} days")
        return self


class EventsIn(StrictSchema):
    events: list[EventIn] = Field(..., min_length=1, max_length=sessions.MAX_EVENTS_PER_REQUEST)


class EventResult(Schema):
    event_id: str
    status: str
    detail: str


class SessionOut(Schema):
    id: int
    instrument_id: int
    booking_id: int | None
    start: datetime | None
    end: datetime | None
    source: str
    samples: int


class LoggerTokenIn(StrictSchema):
    name: str = Field(..., min_length=1, max_length=100)


class LoggerTokenOut(Schema):
    id: int
    instrument_id: int
    name: str
    prefix: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None


class NewLoggerTokenOut(LoggerTokenOut):
    token: str


class CheckOutIn(StrictSchema):
    samples: int = Field(0, ge=0, le=100_000)


class FlagOut(Schema):
    id: int
    instrument_id: int
    kind: str
    booking_id: int | None
    session_id: int | None
    detail: str
    state: str
    reason: str
    created_at: datetime


class FlagDecisionIn(StrictSchema):
    decision: Literal["accepted", "corrected", "waived"]
    reason: str = Field("", max_length=2000)
    minutes: int | None = Field(None, ge=0, le=100_000, description="Corrected billable quantity")


class RatingIn(StrictSchema):
    rating: int = Field(..., ge=1, le=5)


@router.post("/usage/events", auth=LoggerAuth(), response=list[EventResult],
             summary="Loggers report start/stop events or whole sessions (idempotent by event_id)")
def post_events(request, payload: EventsIn):
    events = [event.model_dump() for event in payload.events]
    return sessions.ingest_events(logger=request.auth, events=events)


@router.post("/bookings/{booking_id}/check-in", response=SessionOut, summary="Check in to my booking")
def check_in(request, booking_id: int):
    return sessions.check_in(user=request.auth, booking_id=booking_id)


@router.post("/bookings/{booking_id}/check-out", response=SessionOut, summary="Check out of my booking")
def check_out(request, booking_id: int, payload: CheckOutIn | None = None):
    return sessions.check_out(user=request.auth, booking_id=booking_id, samples=payload.samples if payload else 0)


@router.get("/instruments/{instrument_id}/logger-tokens", response=list[LoggerTokenOut],
            summary="The instrument's logger tokens (lab managers)")
def list_logger_tokens(request, instrument_id: int):
    instrument = Instrument.objects.filter(pk=instrument_id, lab_id__in=people.managed_lab_ids(request.auth)).first()
    if instrument is None:
        raise NotFound("not_found", "No such instrument among the ones you manage.")
    return list(instrument.logger_tokens.all()[:100])


@router.post("/instruments/{instrument_id}/logger-tokens", response={201: NewLoggerTokenOut},
             summary="Create a logger token for the instrument PC (shown once)")
def create_logger_token(request, instrument_id: int, payload: LoggerTokenIn):
    token, plain = sessions.create_logger_token(actor=request.auth, instrument_id=instrument_id, name=payload.name)
    return Status(201, {**LoggerTokenOut.from_orm(token).model_dump(), "token": plain})


@router.post("/logger-tokens/{token_id}/revoke", response=LoggerTokenOut, summary="Revoke a logger token")
def revoke_logger_token(request, token_id: int):
    return sessions.revoke_logger_token(actor=request.auth, token_id=token_id)


@router.get("/usage/flags", response=list[FlagOut], summary="Flagged usage for the labs I manage")
def list_flags(request, state: Literal["open", "accepted", "corrected", "waived"] = "open"):
    flags = ReviewFlag.objects.filter(instrument__lab_id__in=people.managed_lab_ids(request.auth), state=state)
    return list(flags.order_by("-created_at")[:500])


@router.post("/usage/flags/{flag_id}", response=FlagOut, summary="Accept, correct or waive a flagged item")
def resolve_flag(request, flag_id: int, payload: FlagDecisionIn):
    return review.resolve_flag(actor=request.auth, flag_id=flag_id, decision=payload.decision, reason=payload.reason,
                              minutes=payload.minutes)


@router.post("/service-records/{record_id}/rating", summary="Rate a completed service once (1-5)")
def rate_service(request, record_id: int, payload: RatingIn):
    service = review.rate_service(user=request.auth, record_id=record_id, rating=payload.rating)
    return {"id": service.pk, "rating": service.rating}


class RowErrorOut(Schema):
    line: int
    reason: str


class ImportOut(Schema):
    dry_run: bool
    rows: int
    created: int
    unchanged: int
    errors: list[RowErrorOut]


class ImportRefusedOut(Schema):
    code: str
    detail: str
    errors: list[dict] = Field(default_factory=list, description="For bad rows: {line, reason} each")
    rows: int | None = None


@router.post("/usage/import", response={200: ImportOut, 422: ImportRefusedOut},
             summary="Upload a logbook (CSV or XLSX); dry_run=true checks every row and changes nothing")
def import_logbook(request, file: File[UploadedFile], dry_run: bool = True):
    result = logbook.import_logbook(actor=request.auth, data=file.read(MAX_UPLOAD_BYTES + 1),
                                    filename=file.name or "logbook.csv", dry_run=dry_run)
    errors = [{"line": e.line, "reason": e.reason} for e in result.errors]
    if errors:
        return Status(422, {"code": "invalid_rows", "detail": f"{len(errors)} rows are wrong; nothing was imported.",
                            "errors": errors, "rows": result.rows})
    return Status(200, {"dry_run": result.dry_run, "rows": result.rows, "created": result.created,
                        "unchanged": result.unchanged, "errors": []})
