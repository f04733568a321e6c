"""Every write to the catalog: rules, one transaction, one audit record each."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab
from instrumentshare.audit.services import changes, record
from instrumentshare.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, validated
from instrumentshare.core.text import clean_rich_text, has_control_characters

from . import queries
from .hours import format_minute
from .impact import Impact, apply_change, settle_within
from .models import (
    BookingPolicy,
    Category,
    Downtime,
    Instrument,
    ListingChangeRequest,
    OpeningException,
    OpeningRule,
    Qualification,
    TrainingRequest,
)
from .windows import refresh_opening_windows

logger = logging.getLogger(__name__)

# Fields a lab manager may set on an instrument. Never the owner, the organization or the listing state.
INSTRUMENT_FIELDS = (
    "name_zh", "name_en", "asset_number", "affiliation", "category_id", "subject_code", "source",
    "funded_central", "funded_local", "funded_own", "funded_other", "original_value", "country", "manufacturer",
    "model_number", "purchase_date", "acceptance_date", "purpose", "specifications", "main_functions",
    "service_content", "user_requirements", "fee_standard", "district", "address", "room", "time_zone",
    "contact_name", "contact_phone", "contact_email", "status", "customs_supervised", "warmup_minutes",
    "postprocessing_minutes",
)
POLICY_FIELDS = (
    "mode", "slot_minutes", "min_minutes", "max_minutes", "min_notice_minutes", "horizon_days",
    "cancellation_window_hours", "buffer_minutes", "approval", "qualification_required", "closed_on_public_holidays",
    "max_hours_per_user_week", "max_hours_per_lab_week", "charge_mode", "min_charge_minutes", "rounding_minutes",
    "no_show_grace_minutes", "no_show_charge_percent", "late_cancel_charge_percent",
)
AUDITED_FIELDS = (*INSTRUMENT_FIELDS, "share_mode", "listing_state", "lab_id")
# The description may carry basic formatting (sub/superscripts, lists), sanitized by nh3; every
# other text field is plain text (instrumentshare.core.text).
RICH_TEXT_FIELDS = ("specifications", "main_functions", "service_content", "user_requirements")


def _checked_text(fields: dict) -> dict:
    """Rich-text fields sanitized; one-line fields (names, numbers, addresses) free of line breaks,
    which would break the e-mail subjects and calendar titles they go into."""
    fields = dict(fields)
    for name, value in fields.items():
        if not isinstance(value, str):
            continue
        if name in RICH_TEXT_FIELDS:
            fields[name] = clean_rich_text(value)
        elif Instrument._meta.get_field(name).get_internal_type() == "CharField" and has_control_characters(value):
            message = "must be one line, without line breaks, tabs or control characters."
            raise Invalid("invalid", f"{name}: {message}", extra={"fields": {name: [message]}})
    return fields


def _clean(instance, exclude=None):
    validated(instance, exclude=exclude)


def _require_manager(actor, lab_id: int) -> None:
    if not people.is_lab_manager(actor, lab_id):
        raise Forbidden("forbidden", "Only a manager of the owning lab may do this.")


def _locked_instrument(instrument_id: int) -> Instrument:
    instrument = Instrument.objects.select_for_update().filter(pk=instrument_id).first()
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    return instrument


def _managed_instrument(actor, instrument_id: int) -> Instrument:
    """The instrument, locked, for a write by a manager of its lab.

    Someone who may not even see it (a draft of another lab) learns nothing: 404. Someone who
    sees it but does not manage it: 403.
    """
    instrument = _locked_instrument(instrument_id)
    if not queries.can_see(actor, instrument):
        raise NotFound("not_found", "No such instrument.")
    _require_manager(actor, instrument.lab_id)
    return instrument


def _check_category(instrument: Instrument) -> None:
    """The national record needs the finest code: a category with sub-categories is too coarse."""
    if instrument.category_id and Category.objects.filter(parent_id=instrument.category_id).exists():
        raise Invalid("invalid", f"category: {instrument.category_id} has sub-categories; choose the finest code.",
                      extra={"fields": {"category": ["Choose a category without sub-categories."]}})


def is_mandatory(instrument: Instrument) -> bool:
    """Must be listed and shared: bought with public funds and worth at least the threshold."""
    return instrument.is_publicly_funded and instrument.original_value >= settings.MANDATORY_LISTING_VALUE


@transaction.atomic
def create_instrument(*, actor, lab: Lab, share_mode: str = Instrument.ShareMode.EXTERNAL,
                      policy: dict | None = None, opening_hours: list[tuple[int, int, int]] | None = None,
                      **fields) -> Instrument:
    """A new instrument as a draft, with its booking policy and (optionally) weekly opening hours."""
    _require_manager(actor, lab.pk)
    unknown = set(fields) - set(INSTRUMENT_FIELDS)
    if unknown:
        raise Invalid("invalid", f"Unknown or read-only fields: {', '.join(sorted(unknown))}.")
    if share_mode not in Instrument.ShareMode.values:
        raise Invalid("invalid_share_mode", f"Share mode must be one of {', '.join(Instrument.ShareMode.values)}.")
    fields = _checked_text(fields)
    instrument = Instrument(lab=lab, organization_id=lab.organization_id, share_mode=share_mode, **fields)
    if not instrument.district:
        instrument.district = lab.district
    # Before full_clean, which would report the same clash as an anonymous constraint violation.
    if Instrument.objects.filter(organization_id=lab.organization_id, asset_number=instrument.asset_number).exists():
        raise Conflict("duplicate_asset_number", f"Asset number {instrument.asset_number} is already listed.",
                       extra={"fields": {"asset_number": [f"{instrument.asset_number} is already listed."]}})
    _clean(instrument, exclude=["photo"])
    _check_category(instrument)
    if share_mode == Instrument.ShareMode.NOT_SHARED and is_mandatory(instrument):
        raise Forbidden("approval_required",
                        "This instrument must be shared; list it, then request an exemption with a justification.")
    instrument.save()
    policy_row = BookingPolicy(instrument=instrument, **(policy or {}))
    _clean(policy_row)
    policy_row.save()
    for weekday, open_minute, close_minute in opening_hours or []:
        rule = OpeningRule(instrument=instrument, weekday=weekday, open_minute=open_minute, close_minute=close_minute)
        _clean(rule)
        rule.save()
    refresh_opening_windows(instrument_ids=[instrument.pk])
    record(actor=actor, action="instrument.created", target=instrument, after=changes(instrument, AUDITED_FIELDS))
    return instrument


@transaction.atomic
def update_instrument(*, actor, instrument_id: int, **fields) -> Instrument:
    instrument = _managed_instrument(actor, instrument_id)
    unknown = set(fields) - set(INSTRUMENT_FIELDS)
    if unknown:
        raise Invalid("invalid", f"Unknown or read-only fields: {', '.join(sorted(unknown))}.")
    fields = _checked_text(fields)
    before = changes(instrument, fields)
    for name, value in fields.items():
        setattr(instrument, name, value)
    duplicate = Instrument.objects.filter(organization_id=instrument.organization_id,
                                          asset_number=instrument.asset_number).exclude(pk=instrument.pk)
    if duplicate.exists():
        raise Conflict("duplicate_asset_number", f"Asset number {instrument.asset_number} is already listed.",
                       extra={"fields": {"asset_number": [f"{instrument.asset_number} is already listed."]}})
    _clean(instrument, exclude=["photo"])
    if "category_id" in fields:
        _check_category(instrument)
    instrument.save()
    after = changes(instrument, fields)
    changed = {key for key in fields if before.get(key) != after.get(key)}
    if "time_zone" in changed:  # the same local hours are other UTC times now
        refresh_opening_windows(instrument_ids=[instrument.pk])
    if changed:
        record(actor=actor, action="instrument.updated", target=instrument,
               before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return instrument


@transaction.atomic
def update_policy(*, actor, instrument_id: int, dry_run: bool = False, bookings: str | None = None,
                  notice: str = "", now: datetime | None = None, **fields) -> BookingPolicy | Impact:
    """Change the booking rules. Bookings the new rules would refuse (qualification now required, shorter
    limits) are shown on a dry run and cancelled or kept as ``bookings`` says (``catalog.impact``)."""
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise Invalid("invalid", f"Unknown policy fields: {', '.join(sorted(unknown))}.")

    def change(instrument: Instrument) -> BookingPolicy:
        policy, _created = BookingPolicy.objects.get_or_create(instrument=instrument)
        before = changes(policy, fields)
        for name, value in fields.items():
            setattr(policy, name, value)
        _clean(policy)
        policy.save()
        instrument.policy = policy
        refresh_opening_windows(instrument_ids=[instrument.pk], now=now)  # horizon, public holidays
        record(actor=actor, action="instrument.policy_updated", target=instrument, before=before,
               after=changes(policy, fields))
        return policy

    return _settled(apply_change(actor=actor, lock=lambda: _managed_instrument(actor, instrument_id), change=change,
                                 what="预约规则调整 New booking rules", dry_run=dry_run, decision=bookings,
                                 notice=notice, now=now))


def _settled(impact: Impact):
    """A dry run answers its impact; a saved change answers what it wrote, carrying the impact along."""
    if impact.dry_run:
        return impact
    try:
        impact.result.impact = impact
    except AttributeError:  # a list (opening hours): the audit trail and the bookings carry the impact
        pass
    return impact.result


def set_opening_hours(*, actor, instrument_id: int, rules: list[tuple[int, int, int]], dry_run: bool = False,
                      bookings: str | None = None, notice: str = "",
                      now: datetime | None = None) -> list[OpeningRule] | Impact:
    """Replace the weekly opening hours: (weekday, open minute, close minute) in the instrument's zone.
    Bookings left (even partly) in closed time are shown first and cancelled or kept (``catalog.impact``)."""
    new_rules_of = lambda instrument: [OpeningRule(instrument=instrument, weekday=w, open_minute=o,  # noqa: E731
                                                   close_minute=c) for w, o, c in rules]

    def change(instrument: Instrument) -> list[OpeningRule]:
        new_rules = new_rules_of(instrument)
        for rule in new_rules:
            _clean(rule)
        by_day: dict[int, list[OpeningRule]] = {}
        for rule in sorted(new_rules, key=lambda r: (r.weekday, r.open_minute)):
            previous = by_day.setdefault(rule.weekday, [])
            if previous and previous[-1].close_minute > rule.open_minute:
                raise Invalid("overlapping_hours", f"Opening hours overlap on weekday {rule.weekday}.")
            previous.append(rule)
        before = [str(rule) for rule in instrument.opening_rules.all()]
        instrument.opening_rules.all().delete()
        OpeningRule.objects.bulk_create(new_rules)
        refresh_opening_windows(instrument_ids=[instrument.pk], now=now)
        record(actor=actor, action="instrument.opening_hours_set", target=instrument, before={"rules": before},
               after={"rules": [str(rule) for rule in new_rules]})
        return new_rules

    return _settled(apply_change(actor=actor, lock=lambda: _managed_instrument(actor, instrument_id), change=change,
                                 what="开放时间调整 New opening hours", dry_run=dry_run, decision=bookings,
                                 notice=notice, now=now))


def set_opening_exception(*, actor, instrument_id: int, date, closed: bool = True, open_minute: int | None = None,
                          close_minute: int | None = None, reason: str = "", dry_run: bool = False,
                          bookings: str | None = None, notice: str = "",
                          now: datetime | None = None) -> OpeningException | Impact:
    if not closed and (open_minute is None or close_minute is None or open_minute >= close_minute):
        raise Invalid("invalid_hours", "An open exception needs opening and closing minutes, opening first.")

    def change(instrument: Instrument) -> OpeningException:
        exception, _created = OpeningException.objects.update_or_create(
            instrument=instrument, date=date,
            defaults={"closed": closed, "open_minute": open_minute, "close_minute": close_minute, "reason": reason},
        )
        refresh_opening_windows(instrument_ids=[instrument.pk], now=now)
        record(actor=actor, action="instrument.opening_exception_set", target=instrument,
               after={"date": date, "closed": closed, "open_minute": open_minute, "close_minute": close_minute,
                      "reason": reason})
        return exception

    hours = "闭馆 closed" if closed else f"开放 open {format_minute(open_minute)}-{format_minute(close_minute)}"
    what = f"开放时间调整 Opening hours {date}: {hours}" + (f" ({reason})" if reason else "")
    return _settled(apply_change(actor=actor, lock=lambda: _managed_instrument(actor, instrument_id), change=change,
                                 what=what, dry_run=dry_run, decision=bookings, notice=notice, now=now))


def add_downtime(*, actor, instrument_id: int, start: datetime, end: datetime, kind: str, reason: str,
                 dry_run: bool = False, bookings: str | None = None, notice: str = "",
                 now: datetime | None = None) -> Downtime | Impact:
    """Take the instrument down for a while. The bookings it overlaps are shown first (``dry_run``) and
    then cancelled with a reason or kept, flagged, as the manager decides (``catalog.impact``)."""
    if not reason.strip():
        raise Invalid("reason_required", "Downtime needs a reason.")

    def change(instrument: Instrument) -> Downtime:
        downtime = Downtime(instrument=instrument, start=start, end=end, kind=kind, reason=reason, created_by=actor)
        _clean(downtime, exclude=["created_by"])
        if start >= end:
            raise Invalid("invalid_range", "Downtime must end after it starts.")
        downtime.save()
        record(actor=actor, action="instrument.downtime_added", target=instrument,
               after={"downtime_id": downtime.pk, "start": start, "end": end, "kind": kind, "reason": reason})
        return downtime

    def what(instrument: Instrument) -> str:
        zone = instrument.zone
        return (f"停机 Downtime {start.astimezone(zone):%Y-%m-%d %H:%M} – {end.astimezone(zone):%Y-%m-%d %H:%M} "
                f"({instrument.time_zone}): {reason}")

    return _settled(apply_change(actor=actor, lock=lambda: _managed_instrument(actor, instrument_id), change=change,
                                 what=what, dry_run=dry_run, decision=bookings, notice=notice, now=now))


@transaction.atomic
def publish(*, actor, instrument_id: int, now: datetime | None = None) -> Instrument:
    instrument = _managed_instrument(actor, instrument_id)
    if instrument.is_published:
        return instrument
    instrument.listing_state = Instrument.ListingState.PUBLISHED
    instrument.published_at = instrument.published_at or now or timezone.now()
    instrument.save(update_fields=["listing_state", "published_at", "updated_at"])
    record(actor=actor, action="instrument.published", target=instrument, before={"listing_state": "draft"},
           after={"listing_state": "published"})
    return instrument


@transaction.atomic
def set_share_mode(*, actor, instrument_id: int, share_mode: str) -> Instrument:
    """Change the share mode. A mandatory instrument cannot be set to not shared this way."""
    instrument = _managed_instrument(actor, instrument_id)
    if share_mode not in Instrument.ShareMode.values:
        raise Invalid("invalid_share_mode", f"Share mode must be one of {', '.join(Instrument.ShareMode.values)}.")
    if share_mode == Instrument.ShareMode.NOT_SHARED and is_mandatory(instrument):
        raise Forbidden("approval_required",
                        "This instrument must be shared; request an exemption with a written justification.")
    if share_mode == instrument.share_mode:
        return instrument
    before = {"share_mode": instrument.share_mode}
    instrument.share_mode = share_mode
    instrument.save(update_fields=["share_mode", "updated_at"])
    record(actor=actor, action="instrument.share_mode_set", target=instrument, before=before,
           after={"share_mode": share_mode})
    return instrument


def unpublish(*, actor, instrument_id: int, dry_run: bool = False, bookings: str | None = None, notice: str = "",
              now: datetime | None = None) -> Instrument | Impact:
    """Take a non-mandatory instrument off the network. Mandatory ones need an approved request. Its open
    bookings are shown first and cancelled or kept as the manager decides (``catalog.impact``)."""

    def change(instrument: Instrument) -> Instrument:
        if is_mandatory(instrument):
            raise Forbidden("approval_required",
                            "This instrument must be listed; request an exemption with a written justification.")
        return _apply_unpublish(actor, instrument)

    return _settled(apply_change(actor=actor, lock=lambda: _managed_instrument(actor, instrument_id), change=change,
                                 what="仪器下架 Instrument unpublished", dry_run=dry_run, decision=bookings,
                                 notice=notice, now=now))


def _apply_unpublish(actor, instrument: Instrument) -> Instrument:
    if not instrument.is_published:
        return instrument
    instrument.listing_state = Instrument.ListingState.DRAFT
    instrument.save(update_fields=["listing_state", "updated_at"])
    record(actor=actor, action="instrument.unpublished", target=instrument, before={"listing_state": "published"},
           after={"listing_state": "draft"})
    return instrument


@transaction.atomic
def request_listing_change(*, actor, instrument_id: int, kind: str, justification: str) -> ListingChangeRequest:
    instrument = _managed_instrument(actor, instrument_id)
    if kind not in ListingChangeRequest.Kind.values:
        raise Invalid("invalid_kind", "Kind must be unpublish or not_shared.")
    if len(justification.strip()) < 20:
        raise Invalid("justification_required", "Write a justification of at least 20 characters.")
    if ListingChangeRequest.objects.filter(instrument=instrument, kind=kind, state="pending").exists():
        raise Conflict("already_requested", "A request of this kind is already waiting for a decision.")
    change = ListingChangeRequest.objects.create(instrument=instrument, kind=kind, justification=justification,
                                                 requested_by=actor)
    record(actor=actor, action="instrument.listing_change_requested", target=instrument,
           after={"request_id": change.pk, "kind": kind}, reason=justification)
    return change


@transaction.atomic
def decide_listing_change(*, actor, request_id: int, approve: bool, note: str = "",
                          now: datetime | None = None) -> ListingChangeRequest:
    if not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only a platform administrator decides listing exemptions.")
    change = ListingChangeRequest.objects.select_for_update().filter(pk=request_id).first()
    if change is None:
        raise NotFound("not_found", "No such request.")
    if change.state != ListingChangeRequest.State.PENDING:
        return change  # decided already; deciding again changes nothing
    instrument = _locked_instrument(change.instrument_id)
    change.state = ListingChangeRequest.State.APPROVED if approve else ListingChangeRequest.State.REJECTED
    change.decided_by, change.decided_at, change.decision_note = actor, now or timezone.now(), note
    change.save()
    record(actor=actor, action=f"instrument.listing_change_{change.state}", target=instrument,
           after={"request_id": change.pk, "kind": change.kind}, reason=note)
    if approve and change.kind in (ListingChangeRequest.Kind.UNPUBLISH, ListingChangeRequest.Kind.NOT_SHARED):
        # The bureau decides the listing, not the lab's bookings: those the exemption leaves unbookable are
        # kept, each flagged for its booker, and the lab may still cancel them (never silent).
        what = ("仪器下架 Instrument unpublished" if change.kind == ListingChangeRequest.Kind.UNPUBLISH
                else "仪器不再共享 Instrument no longer shared")
        settle_within(actor=actor, instrument=instrument, change=lambda locked: _apply_exemption(actor, locked, change),
                      what=what, decision="keep", now=now)
    return change


def _apply_exemption(actor, instrument: Instrument, change: ListingChangeRequest) -> Instrument:
    if change.kind == ListingChangeRequest.Kind.UNPUBLISH:
        return _apply_unpublish(actor, instrument)
    before = {"share_mode": instrument.share_mode}
    instrument.share_mode = Instrument.ShareMode.NOT_SHARED
    instrument.save(update_fields=["share_mode", "updated_at"])
    record(actor=actor, action="instrument.share_mode_set", target=instrument, before=before,
           after={"share_mode": instrument.share_mode}, reason=f"approved exemption #{change.pk}")
    return instrument


# --- qualifications ----------------------------------------------------------------------------


@transaction.atomic
def grant_qualification(*, actor, instrument_id: int, user, expires_at: datetime | None = None,
                        note: str = "", now: datetime | None = None) -> Qualification:
    instrument = _managed_instrument(actor, instrument_id)
    return _grant(actor, instrument, user, expires_at, note, now or timezone.now())


def _grant(actor, instrument: Instrument, user, expires_at, note: str, now: datetime) -> Qualification:
    if expires_at is not None and expires_at <= now:
        raise Invalid("invalid_expiry", "The expiry must be in the future.")
    existing = Qualification.objects.filter(instrument=instrument, user=user, revoked_at__isnull=True)
    for qualification in existing:
        if qualification.is_valid() and qualification.expires_at == expires_at:
            return qualification
    qualification = Qualification.objects.create(instrument=instrument, user=user, granted_by=actor,
                                                 expires_at=expires_at, note=note)
    for training in TrainingRequest.objects.select_for_update().filter(instrument=instrument, user=user,
                                                                       state=TrainingRequest.State.OPEN):
        _decided(training, actor, TrainingRequest.State.DONE, note, now, qualification=qualification)
    record(actor=actor, action="qualification.granted", target=instrument,
           after={"user_id": user.pk, "expires_at": expires_at, "qualification_id": qualification.pk})
    return qualification


def _decided(training: TrainingRequest, actor, state: str, note: str, now: datetime, qualification=None) -> None:
    """Close a training request and tell the requester, after commit."""
    training.state, training.decided_by, training.decided_at = state, actor, now
    training.decision_note, training.qualification = (note or "")[:2000], qualification
    training.save(update_fields=["state", "decided_by", "decided_at", "decision_note", "qualification"])
    _mail_after_commit(training.pk, "decision")


def _mail_after_commit(training_request_id: int, kind: str) -> None:
    from .tasks import send_training_mail

    def send() -> None:
        try:
            send_training_mail.delay(training_request_id, kind)
        except Exception as error:  # noqa: BLE001 - the broker or mail server is down: the request still stands
            logger.warning("training %s mail for request %s not sent: %s", kind, training_request_id, error)

    transaction.on_commit(send)


def revoke_qualification(*, actor, qualification_id: int, reason: str = "", dry_run: bool = False,
                         bookings: str | None = None, now: datetime | None = None) -> Qualification | Impact:
    """Withdraw a qualification. Where the instrument requires one, the person's open bookings of it are
    shown first and cancelled or kept as the manager decides (``catalog.impact``)."""
    found = Qualification.objects.filter(pk=qualification_id).first()
    if found is None:
        raise NotFound("not_found", "No such qualification.")

    def lock() -> Instrument:
        instrument = _locked_instrument(found.instrument_id)
        if not queries.can_see(actor, instrument):
            raise NotFound("not_found", "No such qualification.")
        _require_manager(actor, instrument.lab_id)
        return instrument

    def change(instrument: Instrument) -> Qualification:
        if not dry_run and not (reason or "").strip():  # after the 404/403: outsiders learn nothing
            raise Invalid("reason_required", "Say why the qualification is revoked.")
        qualification = Qualification.objects.select_for_update().get(pk=qualification_id)
        if qualification.revoked_at is None:
            qualification.revoked_at = now or timezone.now()
            qualification.save(update_fields=["revoked_at"])
            record(actor=actor, action="qualification.revoked", target=instrument,
                   after={"user_id": qualification.user_id, "qualification_id": qualification.pk}, reason=reason)
        return qualification

    return _settled(apply_change(actor=actor, lock=lock, change=change, what="培训资格撤销 Qualification revoked",
                                 dry_run=dry_run, decision=bookings, notice=reason, user_id=found.user_id, now=now))


@transaction.atomic
def request_training(*, actor, instrument_id: int, message: str = "") -> TrainingRequest:
    """Ask to be trained: the request joins the lab's queue and its managers get an e-mail."""
    instrument = Instrument.objects.filter(pk=instrument_id).first()
    if instrument is None or not queries.can_see(actor, instrument):
        raise NotFound("not_found", "No such instrument.")
    existing = TrainingRequest.objects.filter(instrument=instrument, user=actor, state="open").first()
    if existing:
        return existing
    training = TrainingRequest.objects.create(instrument=instrument, user=actor, message=message[:2000])
    record(actor=actor, action="qualification.training_requested", target=instrument,
           after={"training_request_id": training.pk})
    _mail_after_commit(training.pk, "request")
    return training


def _open_training_request(actor, training_request_id: int) -> tuple[TrainingRequest, Instrument]:
    training = TrainingRequest.objects.select_related("user").filter(pk=training_request_id).first()
    if training is None:
        raise NotFound("not_found", "No such training request.")
    instrument = _managed_instrument(actor, training.instrument_id)
    training = TrainingRequest.objects.select_for_update().select_related("user").get(pk=training_request_id)
    return training, instrument


@transaction.atomic
def grant_training_request(*, actor, training_request_id: int, expires_at: datetime | None = None, note: str = "",
                           now: datetime | None = None) -> TrainingRequest:
    """Grant a request from the lab's queue: the qualification (until ``expires_at``), the request closed,
    the requester told."""
    training, instrument = _open_training_request(actor, training_request_id)
    if training.state != TrainingRequest.State.OPEN:
        if training.state == TrainingRequest.State.DONE:
            return training
        raise Conflict("invalid_state", f"This training request is {training.state}.")
    _grant(actor, instrument, training.user, expires_at, note, now or timezone.now())
    training.refresh_from_db()
    return training


@transaction.atomic
def decline_training_request(*, actor, training_request_id: int, reason: str = "",
                             now: datetime | None = None) -> TrainingRequest:
    training, instrument = _open_training_request(actor, training_request_id)
    if training.state != TrainingRequest.State.OPEN:
        return training
    _decided(training, actor, TrainingRequest.State.DECLINED, reason, now or timezone.now())
    record(actor=actor, action="qualification.training_declined", target=instrument,
           after={"training_request_id": training.pk, "user_id": training.user_id}, reason=reason)
    return training


# --- downtime, photo ---------------------------------------------------------------------------


@transaction.atomic
def cancel_downtime(*, actor, instrument_id: int, downtime_id: int, reason: str = "") -> None:
    """Remove a downtime (planned maintenance called off, repair finished early: shorten by re-adding)."""
    instrument = _managed_instrument(actor, instrument_id)
    downtime = Downtime.objects.filter(pk=downtime_id, instrument=instrument).first()
    if downtime is None:
        raise NotFound("not_found", "No such downtime.")
    record(actor=actor, action="instrument.downtime_cancelled", target=instrument,
           before={"downtime_id": downtime.pk, "start": downtime.start, "end": downtime.end, "kind": downtime.kind,
                   "reason": downtime.reason}, reason=reason)
    downtime.delete()


MAX_PHOTO_BYTES = 5 * 1024 * 1024
# Trust the bytes, not the file name: the first bytes of each format we accept.
PHOTO_SIGNATURES = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}


def _photo_extension(head: bytes) -> str | None:
    for signature, extension in PHOTO_SIGNATURES.items():
        if head.startswith(signature):
            return extension
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


@transaction.atomic
def set_photo(*, actor, instrument_id: int, content: bytes) -> Instrument:
    """Store a JPEG, PNG or WebP photo under a fresh name; the old file is removed after commit."""
    instrument = _managed_instrument(actor, instrument_id)
    if len(content) > MAX_PHOTO_BYTES:
        raise Invalid("file_too_large", "A photo may be at most 5 MB.")
    extension = _photo_extension(content[:16])
    if extension is None:
        raise Invalid("invalid_photo", "The photo must be a JPEG, PNG or WebP image.")
    old_name = instrument.photo.name
    name = default_storage.save(f"instruments/{instrument.pk}-{secrets.token_hex(6)}.{extension}",
                                ContentFile(content))
    # The old file goes only once the new name is committed, so a rollback never leaves a dangling name.
    transaction.on_commit(lambda: old_name and default_storage.delete(old_name))
    instrument.photo.name = name
    instrument.save(update_fields=["photo", "updated_at"])
    record(actor=actor, action="instrument.photo_set", target=instrument, before={"photo": old_name},
           after={"photo": name})
    return instrument


# --- bulk import ------------------------------------------------------------------------------


@dataclass
class ImportRow:
    """One data row of a spreadsheet, already turned into service arguments (or parse problems)."""

    line: int
    fields: dict
    problems: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ImportProblem:
    line: int
    field: str
    message: str


@dataclass
class ImportResult:
    rows: int
    dry_run: bool
    problems: list[ImportProblem]
    created: list[Instrument]
    valid_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _problems_of(line: int, error: DomainError) -> list[ImportProblem]:
    fields = error.extra.get("fields") if error.extra else None
    if not fields:
        return [ImportProblem(line, "", error.detail)]
    return [ImportProblem(line, name, " ".join(str(m) for m in messages)) for name, messages in fields.items()]


def import_instruments(*, actor, lab: Lab, rows: list[ImportRow], dry_run: bool = True) -> ImportResult:
    """Create every row through ``create_instrument``, all or nothing.

    Each row runs in its own savepoint so that one bad row does not hide the next one's problems;
    the dry run is the real import rolled back, so it finds exactly what the import would find
    (duplicates inside the file included).
    """
    _require_manager(actor, lab.pk)
    problems: list[ImportProblem] = []
    created: list[Instrument] = []
    with transaction.atomic():
        for row in rows:
            if row.problems:
                problems.extend(ImportProblem(row.line, name, message) for name, message in row.problems)
                continue
            try:
                created.append(create_instrument(actor=actor, lab=lab, **row.fields))
            except DomainError as error:
                problems.extend(_problems_of(row.line, error))
        valid_rows = len(created)
        if dry_run or problems:
            transaction.set_rollback(True)
            created = []
        else:
            record(actor=actor, action="instrument.imported", target=lab,
                   after={"count": len(created), "asset_numbers": [i.asset_number for i in created]})
    return ImportResult(rows=len(rows), dry_run=dry_run, problems=problems, created=created, valid_rows=valid_rows)


@dataclass
class FileImport:
    """An instrument file as read, and what importing it did (or would do, on a dry run)."""

    result: ImportResult
    ignored_headers: list[str]
    problems: list[dict]   # one per problem: line, column (as the file names it), field, message


def import_instrument_file(*, actor, lab: Lab, data: bytes, filename: str, dry_run: bool = True) -> FileImport:
    """The whole import of a lab's instrument file (CSV or XLSX), for the page, the API and the command:
    read it safely, parse the rows, import them all or nothing (``import_instruments``)."""
    from instrumentshare.core.spreadsheets import read_table

    from . import spreadsheet

    _require_manager(actor, lab.pk)
    parsed = spreadsheet.parse_instruments(read_table(data, filename))
    result = import_instruments(actor=actor, lab=lab, rows=parsed.rows, dry_run=dry_run)
    return FileImport(result=result, ignored_headers=parsed.ignored_headers,
                      problems=spreadsheet.describe_problems(result.problems))
