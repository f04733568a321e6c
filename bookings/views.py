"""Booking pages: the instrument's week calendar, the booking form, one booking, my bookings, the lab
queue, feed links, and the calendar feeds themselves. Thin: every write is one service call."""

from __future__ import annotations

import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.cache import get_conditional_response
from django.utils.http import http_date, quote_etag, url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST, require_safe

from catalog import queries as catalog_queries
from catalog.models import BookingPolicy, Instrument
from instrumentshare.accounts.ratelimit import rate_limit
from instrumentshare.core.errors import DomainError, Invalid
from instrumentshare.core.pages import refusals_return_to

from . import queries, services
from .extensions import booking_page_panels
from .forms import (
    WEEKDAY_CHOICES,
    BookingForm,
    BookingTimesForm,
    CancelForm,
    RejectForm,
    WaitlistForm,
    code_message,
    rule_message,
    wall_clock,
)
from .models import Booking, FeedToken
from .services import notifications

CALENDAR = "text/calendar; charset=utf-8"


# --- helpers --------------------------------------------------------------------------------------


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _instrument_or_404(user, instrument_id) -> Instrument:
    instrument = queries.visible_instrument(user, _int(instrument_id))
    if instrument is None:
        raise Http404("No such instrument.")
    return instrument


def _booking_or_404(user, booking_id: int) -> Booking:
    booking = queries.bookings().select_related("instrument__policy").filter(pk=booking_id).first()
    if booking is None or not services.can_see_booking(user, booking):
        raise Http404("No such booking.")
    return booking


def _next_url(request, default: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


def _json_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


def _moment(value: str | None, zone) -> dt.datetime:
    """An ISO 8601 date or date-time from the query string; without an offset it is read in ``zone``.

    FullCalendar, drawing a named zone without a time zone plugin, sends wall-clock times.
    """
    text = (value or "").strip().replace(" ", "+")  # an unescaped "+" in an offset arrives as a space
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def _range_or_error(request, zone) -> tuple[dt.datetime, dt.datetime] | JsonResponse:
    try:
        start, end = _moment(request.GET.get("start"), zone), _moment(request.GET.get("end"), zone)
        return queries.checked_range(start, end)
    except (ValueError, OverflowError):
        return _json_error(400, "bad_request", "start and end must be ISO 8601 dates or date-times.")
    except DomainError as error:
        return _json_error(error.status, error.code, error.detail)


def _local_iso(value: dt.datetime, zone) -> str:
    return value.astimezone(zone).isoformat()


def _zone_offset(zone, at: dt.datetime) -> str:
    offset = at.astimezone(zone).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def _week_of(value: str | None, zone) -> dt.date:
    """The day whose week to show: ``?date=`` when it parses and lies within ten years, else today."""
    today = timezone.now().astimezone(zone).date()
    try:
        day = dt.date.fromisoformat(value or "")
    except ValueError:
        return today
    return day if abs((day - today).days) <= 3660 else today


def _calendar_locale() -> str:
    return "zh-cn" if translation.get_language().startswith("zh") else "en"


def _calendar_texts() -> dict:
    return {
        "today": _("Today"), "week": _("Week"), "day": _("Day"), "list": _("List"), "allDay": _("All day"),
        "busy": _("Busy"), "free": _("Free"), "yourTime": _("In your time zone"),
        "noEvents": _("Nothing booked in this range."), "previous": _("Earlier"), "next": _("Later"),
        "todayHint": _("Back to today"),
        "loadError": _("The calendar could not load its times. Reload the page to try again."),
        "moveFailed": _("The booking could not be moved; it is back where it was. Try again, or use the form on "
                        "the booking's page."),
        "moving": _("Moving the booking…"),
    }


# --- the instrument's week calendar ---------------------------------------------------------------


@require_GET
def calendar(request, instrument_id: int):
    instrument = _instrument_or_404(request.user, instrument_id)
    zone, now = instrument.zone, timezone.now()
    day = _week_of(request.GET.get("date"), zone)
    first, last = queries.opening_span(instrument)
    may_book, reason = catalog_queries.may_book(request.user, instrument)
    if may_book and instrument.policy.mode != BookingPolicy.Mode.SLOTS:
        may_book, reason = False, "samples_only"
    training = _training(request.user, instrument)
    if may_book and training["needs_training"]:
        may_book, reason = False, "not_qualified"
    config = {
        "eventsUrl": reverse("bookings:calendar_events", args=[instrument.pk]),
        "freeListUrl": reverse("bookings:free_list", args=[instrument.pk]),
        "newUrl": f"{reverse('bookings:new')}?instrument={instrument.pk}",
        "timeZone": instrument.time_zone, "locale": _calendar_locale(), "initialDate": day.isoformat(),
        "slotMinutes": instrument.policy.slot_minutes, "minMinutes": instrument.policy.min_minutes,
        "slotMinTime": f"{first // 60:02d}:{first % 60:02d}:00", "slotMaxTime": f"{last // 60:02d}:{last % 60:02d}:00",
        "selectable": may_book, "texts": _calendar_texts(), "csrfToken": get_token(request),
    }
    context = {
        **training, "instrument": instrument, "policy": instrument.policy, "config": config, "may_book": may_book,
        "refusal": code_message(reason, instrument) or reason if request.user.is_authenticated else "",
        "zone_offset": _zone_offset(zone, now),
        "login_url": f"{reverse('accounts:login')}?{urlencode({'next': request.get_full_path()})}",
        **_free_list_context(instrument, day, request.user),
    }
    return render(request, "bookings/calendar.html", context)


def _estimate(request, form, instrument: Instrument) -> dict | None:
    """The cost of the times on the form: those posted, or those the calendar selection passed in."""
    cleaned = getattr(form, "cleaned_data", None) or {}
    start, end = cleaned.get("start"), cleaned.get("end")
    if not (start and end):
        try:
            start, end = (_moment(request.GET.get(key), instrument.zone) for key in ("start", "end"))
        except (TypeError, ValueError):
            return None
    return queries.cost_estimate(user=request.user, instrument=instrument, start=start, end=end)


def _training(user, instrument: Instrument) -> dict:
    """Whether this user must be trained first (told up front, with the way to ask), and their open request."""
    needs = bool(user.is_authenticated and instrument.policy.qualification_required
                 and not catalog_queries.is_qualified(user, instrument))
    return {"needs_training": needs,
            "training_request": catalog_queries.open_training_request_of(user, instrument) if needs else None}


def _free_list_context(instrument: Instrument, day: dt.date, user) -> dict:
    start = queries.week_start(day, instrument.zone)
    end = start + dt.timedelta(days=7)
    week = queries.calendar_week(instrument, start, end, user=user)
    monday = start.astimezone(instrument.zone).date()
    return {
        "week_monday": monday, "week_sunday": monday + dt.timedelta(days=6),
        "previous_week": monday - dt.timedelta(days=7), "next_week": monday + dt.timedelta(days=7),
        "free_slots": queries.bookable_starts(instrument, week.free),
    }


@require_GET
def free_list(request, instrument_id: int):
    """The week's free times as a list (htmx swaps it in when the calendar changes week)."""
    instrument = _instrument_or_404(request.user, instrument_id)
    may_book, _reason = catalog_queries.may_book(request.user, instrument)
    context = {"instrument": instrument, "may_book": may_book,
               **_free_list_context(instrument, _week_of(request.GET.get("date"), instrument.zone), request.user)}
    return render(request, "bookings/_free_list.html", context)


@require_GET
def calendar_events(request, instrument_id: int):
    """Free and busy times as FullCalendar events, in the instrument's local time with its offset."""
    instrument = queries.visible_instrument(request.user, instrument_id)
    if instrument is None:
        return _json_error(404, "not_found", "No such instrument.")
    checked = _range_or_error(request, instrument.zone)
    if isinstance(checked, JsonResponse):
        return checked
    zone = instrument.zone
    week = queries.calendar_week(instrument, *checked, user=request.user)
    events = [{"start": _local_iso(a, zone), "end": _local_iso(b, zone), "display": "background", "groupId": "free",
               "classNames": ["slot-free"], "extendedProps": {"kind": "free"}} for a, b in week.free]
    busy = _("Busy")  # once: a dense week has hundreds of busy events
    events += [{"start": _local_iso(a, zone), "end": _local_iso(b, zone), "title": busy,
                "classNames": ["slot-busy"],
                "extendedProps": {"kind": "busy", "utcStart": a.isoformat(), "utcEnd": b.isoformat()}}
               for a, b in week.busy]
    now = timezone.now()
    offered = queries.waitlist_holds([b.pk for b in week.mine if b.state == Booking.State.HELD])
    events += [{"start": _local_iso(b.start, zone), "end": _local_iso(b.end, zone),
                "title": _("Held for you: answer on your waiting list") if b.pk in offered
                else f"{_('Your booking')} · {b.get_state_display()}",
                "url": reverse("bookings:waitlist") if b.pk in offered else reverse("bookings:detail", args=[b.pk]),
                "classNames": ["slot-mine", f"state-{b.state}"],
                # The booker's own open booking can be dragged or resized: the page posts it to "move".
                "editable": _movable(b, now),
                "extendedProps": {"kind": "mine", "utcStart": b.start.isoformat(), "utcEnd": b.end.isoformat(),
                                  "bookingId": b.pk,
                                  "moveUrl": reverse("bookings:move", args=[b.pk]) if _movable(b, now) else ""}}
               for b in week.mine]
    return JsonResponse(events, safe=False)


def _movable(booking: Booking, now: dt.datetime) -> bool:
    return booking.state in (Booking.State.PENDING, Booking.State.CONFIRMED) and booking.start > now


# --- booking --------------------------------------------------------------------------------------


@login_required
@rate_limit("RATE_LIMIT_BOOKINGS", methods=("POST",))
def new_booking(request):
    instrument = _instrument_or_404(request.user, request.GET.get("instrument"))
    may_book, reason = catalog_queries.may_book(request.user, instrument)
    training = _training(request.user, instrument)
    if may_book and training["needs_training"]:
        may_book, reason = False, "not_qualified"
    labs = queries.labs_of(request.user)
    conflict, preview = False, None
    if request.method == "POST":
        form = BookingForm(request.POST, instrument=instrument, labs=labs, user=request.user)
        if form.is_valid() and form.cleaned_data.get("repeat"):
            series, preview = _new_series(request, form, instrument)
            if series is not None:
                return redirect("bookings:series", series.pk)
        elif form.is_valid():
            data = form.cleaned_data
            try:
                booking = services.create_booking(
                    user=request.user, instrument_id=instrument.pk, start=data["start"], end=data["end"],
                    purpose=data["purpose"], lab_id=data["lab"].pk if data.get("lab") else None,
                    extras=form.extras())
            except DomainError as error:
                if error.status == 404:
                    raise Http404(error.detail) from error
                conflict = error.status == 409
                form.add_error(None, rule_message(error, instrument))
            else:
                messages.success(request, _("Your booking request is waiting for the lab's approval.")
                                 if booking.state == Booking.State.PENDING else _("Booked."))
                return redirect("bookings:detail", booking.pk)
    else:
        zone = instrument.zone
        form = BookingForm(instrument=instrument, labs=labs, user=request.user, initial={
            "start": wall_clock(request.GET.get("start"), zone), "end": wall_clock(request.GET.get("end"), zone)})
    context = {**training, "estimate": _estimate(request, form, instrument),
               "instrument": instrument, "policy": instrument.policy, "form": form, "conflict": conflict,
               "may_book": may_book, "refusal": "" if may_book else code_message(reason, instrument) or reason,
               "zone_offset": _zone_offset(instrument.zone, timezone.now()), "preview": preview}
    return render(request, "bookings/new.html", context)


def _new_series(request, form: BookingForm, instrument: Instrument):
    """The form with "repeat": first a preview of every date (booked nothing), then, on confirmation, the
    dates that pass are booked. Returns (the series booked, or None; the preview to show, or None)."""
    data = form.cleaned_data
    confirmed = bool(request.POST.get("confirm"))
    try:
        result = services.create_series(
            user=request.user, instrument_id=instrument.pk, start=data["start"], end=data["end"],
            purpose=data["purpose"], lab_id=data["lab"].pk if data.get("lab") else None, extras=form.extras(),
            dry_run=not confirmed, book_available=confirmed, **form.series_rule())
    except DomainError as error:
        if error.status == 404:
            raise Http404(error.detail) from error
        field = error.extra.get("field")
        form.add_error(field if field in form.fields else None, rule_message(error, instrument))
        return None, None
    if result.dry_run:
        return None, _series_preview(result, instrument)
    booked = len(result.occurrences) - len(result.conflicts)
    messages.success(request, _("%(booked)s of %(total)s dates booked.") % {"booked": booked,
                                                                           "total": len(result.occurrences)})
    return result.series, None


def _occurrence_rows(occurrences: list[dict], instrument: Instrument) -> list[dict]:
    """Each date of a series for a page: local times, and booked/bookable or why not, in the page's language."""
    zone, rows = instrument.zone, []
    for item in occurrences:
        start, end = (value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
                      for value in (item["start"], item["end"]))
        why = "" if item["ok"] else rule_message(
            DomainError(item["code"], item["detail"], extra={"conflict": item.get("conflict") or {}}), instrument)
        rows.append({"start": start.astimezone(zone), "end": end.astimezone(zone), "ok": item["ok"],
                     "why": why, "state": item.get("state") or "", "booking_id": item.get("booking_id")})
    return rows


def _series_preview(result, instrument: Instrument) -> dict:
    rows = _occurrence_rows([occurrence.as_dict() for occurrence in result.occurrences], instrument)
    free = sum(1 for row in rows if row["ok"])
    return {"rows": rows, "free": free, "total": len(rows), "conflicts": len(rows) - free,
            "pending": sum(1 for row in rows if row["state"] == Booking.State.PENDING)}


def _detail_context(request, booking: Booking, reschedule_form=None) -> dict:
    user, now = request.user, timezone.now()
    is_booker = booking.user_id == user.pk
    is_lab = catalog_queries.can_manage(user, booking.instrument)
    open_state = booking.state in (Booking.State.PENDING, Booking.State.CONFIRMED) and booking.start > now
    lab_cancelled = booking.state == Booking.State.CANCELLED and booking.cancelled_by_id not in (None, booking.user_id)
    late_fee = None
    if open_state and is_booker and booking.state == Booking.State.CONFIRMED:
        estimate = queries.cost_estimate(user=user, instrument=booking.instrument, start=booking.start,
                                         end=booking.end)
        if estimate and estimate["late_cancel_percent"]:
            late_fee = {"amount": estimate["amount"] * estimate["late_cancel_percent"] / 100,
                        "currency": estimate["currency"], "percent": estimate["late_cancel_percent"]}
    return {
        "late_fee": late_fee, "late_penalty": settings.CREDIT_LATE_CANCEL_PENALTY,
        "flagged": open_state and bool(booking.flag), "lab_cancelled": lab_cancelled,
        "rebook_offers": queries.rebook_offers(booking, now=now) if lab_cancelled and is_booker else [],
        "booking": booking, "instrument": booking.instrument, "is_booker": is_booker, "is_lab": is_lab,
        "may_cancel": open_state and (is_booker or is_lab), "may_reschedule": open_state and is_booker,
        "may_decide": is_lab and booking.state == Booking.State.PENDING,
        "reschedule_form": reschedule_form or BookingTimesForm(instrument=booking.instrument,
                                                               initial={"start": booking.start, "end": booking.end}),
        "cancel_form": CancelForm(auto_id="cancel_%s"), "reject_form": RejectForm(auto_id="reject_%s"),
        "panels": [panel for panel in booking_page_panels.collect(request, booking, is_booker=is_booker, is_lab=is_lab,
                                                                   now=now) if panel],
    }


@login_required
@require_GET
def detail(request, booking_id: int):
    booking = _booking_or_404(request.user, booking_id)
    return render(request, "bookings/detail.html", _detail_context(request, booking))


@login_required
@require_POST
def reschedule(request, booking_id: int):
    booking = _booking_or_404(request.user, booking_id)
    form = BookingTimesForm(request.POST, instrument=booking.instrument)
    if form.is_valid():
        try:
            services.reschedule_booking(actor=request.user, booking_id=booking.pk, start=form.cleaned_data["start"],
                                        end=form.cleaned_data["end"])
        except DomainError as error:
            if error.status == 404:
                raise Http404(error.detail) from error
            form.add_error(None, rule_message(error, booking.instrument))
        else:
            messages.success(request, _("Booking moved."))
            return redirect("bookings:detail", booking.pk)
    return render(request, "bookings/detail.html", _detail_context(request, booking, reschedule_form=form))


@login_required
@require_POST
@rate_limit("RATE_LIMIT_BOOKINGS", methods=("POST",))
@refusals_return_to(lambda request, booking_id: reverse("bookings:detail", args=[booking_id]), message=rule_message)
def rebook(request, booking_id: int):
    """One click on an offer of a booking the lab cancelled: the same length and purpose, at the offered time."""
    booking = _booking_or_404(request.user, booking_id)
    if booking.user_id != request.user.pk or booking.state != Booking.State.CANCELLED:
        raise Http404
    try:
        start = _moment(request.POST.get("start"), booking.instrument.zone)
    except ValueError as error:
        raise Invalid("invalid_start", "The offered start time is not a date and time.") from error
    new = services.create_booking(user=request.user, instrument_id=_int(request.POST.get("instrument")) or 0,
                                  start=start, end=start + (booking.end - booking.start), purpose=booking.purpose,
                                  lab_id=booking.charged_lab_id)
    messages.success(request, _("Your booking request is waiting for the lab's approval.")
                     if new.state == Booking.State.PENDING else _("Booked."))
    return redirect("bookings:detail", new.pk)


def _back_to_booking(request, booking_id: int) -> str:
    return _next_url(request, reverse("bookings:detail", args=[booking_id]))


def _back_to_queue(request, **_kwargs) -> str:
    return _next_url(request, reverse("bookings:lab_queue"))


@login_required
@require_POST
@refusals_return_to(_back_to_booking, message=rule_message)
def cancel(request, booking_id: int):
    form = CancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.cancel_booking(actor=request.user, booking_id=booking_id, reason=reason)
    messages.success(request, _("Booking cancelled."))
    return redirect(_back_to_booking(request, booking_id))


@login_required
@require_POST
@refusals_return_to(_back_to_queue, message=rule_message)
def approve(request, booking_id: int):
    services.approve_booking(actor=request.user, booking_id=booking_id)
    messages.success(request, _("Booking approved."))
    return redirect(_back_to_queue(request))


@login_required
@require_POST
@refusals_return_to(_back_to_queue, message=rule_message)
def reject(request, booking_id: int):
    form = RejectForm(request.POST)
    services.reject_booking(actor=request.user, booking_id=booking_id,
                            reason=form.cleaned_data["reason"] if form.is_valid() else "")
    messages.success(request, _("Booking rejected."))
    return redirect(_back_to_queue(request))


@login_required
@require_POST
def move(request, booking_id: int):
    """The week calendar's drag and resize: the same form and service as "Move to another time", answered in
    JSON (the calendar puts the block back on a refusal and shows the message)."""
    booking = _booking_or_404(request.user, booking_id)
    form = BookingTimesForm(request.POST, instrument=booking.instrument)
    if not form.is_valid():
        errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        return _json_error(422, "invalid", errors)
    try:
        moved = services.reschedule_booking(actor=request.user, booking_id=booking.pk,
                                            start=form.cleaned_data["start"], end=form.cleaned_data["end"])
    except DomainError as error:
        if error.status == 404:
            return _json_error(404, "not_found", _("No such booking."))
        return _json_error(error.status, error.code, rule_message(error, booking.instrument))
    detail = _("Booking moved: it awaits the lab's approval again.") if moved.state == Booking.State.PENDING \
        else _("Booking moved.")
    return JsonResponse({"id": moved.pk, "state": moved.state, "detail": detail})


# --- waiting lists --------------------------------------------------------------------------------


@login_required
@require_GET
def waitlist(request):
    entries = list(queries.my_waitlist(request.user)[:100])
    return render(request, "bookings/waitlist.html", {"entries": entries, "now": timezone.now()})


@login_required
@rate_limit("RATE_LIMIT_BOOKINGS", methods=("POST",))
def join_waitlist(request):
    instrument = _instrument_or_404(request.user, request.GET.get("instrument"))
    labs = queries.labs_of(request.user)
    if request.method == "POST":
        form = WaitlistForm(request.POST, instrument=instrument, labs=labs)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.join_waitlist(user=request.user, instrument_id=instrument.pk, start=data["start"],
                                       end=data["end"], minutes=data.get("minutes"), purpose=data["purpose"],
                                       lab_id=data["lab"].pk if data.get("lab") else None)
            except DomainError as error:
                if error.status == 404:
                    raise Http404(error.detail) from error
                form.add_error(None, rule_message(error, instrument))
            else:
                messages.success(request, _("You are on the waiting list. We will e-mail you when the time frees."))
                return redirect("bookings:waitlist")
    else:
        zone = instrument.zone
        form = WaitlistForm(instrument=instrument, labs=labs, initial={
            "start": wall_clock(request.GET.get("start"), zone), "end": wall_clock(request.GET.get("end"), zone),
            "purpose": (request.GET.get("purpose") or "")[:2000]})
    context = {"instrument": instrument, "policy": instrument.policy, "form": form,
               "zone_offset": _zone_offset(instrument.zone, timezone.now())}
    return render(request, "bookings/waitlist_join.html", context)


def _back_to_waitlist(request, **_kwargs) -> str:
    return reverse("bookings:waitlist")


@login_required
@require_POST
@rate_limit("RATE_LIMIT_BOOKINGS", methods=("POST",))
@refusals_return_to(_back_to_waitlist, message=rule_message)
def accept_offer(request, entry_id: int):
    booking = services.accept_offer(user=request.user, entry_id=entry_id)
    messages.success(request, _("Your booking request is waiting for the lab's approval.")
                     if booking.state == Booking.State.PENDING else _("Booked."))
    return redirect("bookings:detail", booking.pk)


@login_required
@require_POST
@refusals_return_to(_back_to_waitlist, message=rule_message)
def decline_offer(request, entry_id: int):
    services.decline_offer(user=request.user, entry_id=entry_id)
    messages.success(request, _("Offer declined: the time goes to the next person in line."))
    return redirect("bookings:waitlist")


@login_required
@require_POST
@refusals_return_to(_back_to_waitlist, message=rule_message)
def leave_waitlist(request, entry_id: int):
    services.leave_waitlist(user=request.user, entry_id=entry_id)
    messages.success(request, _("You left the waiting list."))
    return redirect("bookings:waitlist")


# --- a repeating series ---------------------------------------------------------------------------


def _series_or_404(user, series_id: int):
    series = queries.series_with_occurrences().filter(pk=series_id).first()
    if series is None or not services.can_see_series(user, series):
        raise Http404("No such series.")
    return series


@login_required
@require_GET
def series(request, series_id: int):
    series = _series_or_404(request.user, series_id)
    now = timezone.now()
    instrument = series.instrument
    occurrences = [{"start": b.start, "end": b.end, "ok": True, "state": b.state, "booking_id": b.pk}
                   for b in series.occurrences.all()]
    rows = _occurrence_rows(occurrences + [{**item, "ok": False} for item in series.skipped], instrument)
    rows.sort(key=lambda row: row["start"])
    may_cancel = series.user_id == request.user.pk or catalog_queries.can_manage(request.user, instrument)
    for row in rows:
        row["may_cancel"] = may_cancel and row["state"] in (Booking.State.PENDING, Booking.State.CONFIRMED) \
            and row["start"] > now
    context = {"series": series, "instrument": instrument, "rows": rows, "cancel_form": CancelForm(),
               "may_cancel": any(row["may_cancel"] for row in rows), "is_lab": series.user_id != request.user.pk,
               "weekdays": [label for code, label in WEEKDAY_CHOICES if code in series.weekdays.split(",")]}
    return render(request, "bookings/series.html", context)


def _back_to_series(request, series_id: int) -> str:
    return _next_url(request, reverse("bookings:series", args=[series_id]))


@login_required
@require_POST
@refusals_return_to(_back_to_series, message=rule_message)
def series_cancel(request, series_id: int):
    """Cancel one date, this date and the following, or all of a series (each under the usual rules)."""
    form = CancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    scope = request.POST.get("scope", "")
    cancelled = services.cancel_series(actor=request.user, series_id=series_id, scope=scope,
                                       booking_id=_int(request.POST.get("booking")), reason=reason)
    messages.success(request, _("%(count)s bookings cancelled.") % {"count": len(cancelled)})
    return redirect(_back_to_series(request, series_id))


# --- my bookings, the lab queue -------------------------------------------------------------------


@login_required
@require_GET
def mine(request):
    now = timezone.now()
    upcoming = list(queries.upcoming_bookings(request.user, now=now)[:200])
    for booking in upcoming:
        booking.may_cancel = booking.state in (Booking.State.PENDING, Booking.State.CONFIRMED) and booking.start > now
    context = {
        "upcoming": upcoming, "past": queries.past_bookings(request.user, now=now)[:50],
        "feed_tokens": queries.active_feed_tokens(request.user, scope=FeedToken.Scope.MINE),
        "feed_scope": FeedToken.Scope.MINE, "feed_lab": None,
    }
    return render(request, "bookings/mine.html", context)


@login_required
@require_GET
def lab_queue(request):
    labs = list(queries.labs_managed_by(request.user))
    if not labs:
        raise Http404("You manage no lab.")
    lab = next((lab for lab in labs if lab.pk == _int(request.GET.get("lab"))), labs[0])
    zone_name = queries.lab_time_zone(lab)
    config = {
        "eventsUrl": reverse("bookings:lab_events", args=[lab.pk]), "timeZone": zone_name,
        "locale": _calendar_locale(), "initialDate": _week_of(request.GET.get("date"), ZoneInfo(zone_name)).isoformat(),
        "texts": _calendar_texts(),
    }
    context = {
        "labs": labs, "lab": lab, "lab_zone": zone_name, "config": config,
        "pending": queries.pending_approvals(request.user).filter(instrument__lab=lab),
        "undelivered": queries.undelivered_notifications(request.user, lab.pk)[:200],
        "alert_minutes": settings.OUTBOX_ALERT_MINUTES,
        "training_waiting": catalog_queries.training_queue(request.user).count(),
        "feed_tokens": queries.active_feed_tokens(request.user, scope=FeedToken.Scope.LAB, lab_id=lab.pk),
        "feed_scope": FeedToken.Scope.LAB, "feed_lab": lab,
    }
    return render(request, "bookings/lab_queue.html", context)


@login_required
@require_POST
@refusals_return_to(_back_to_queue, message=rule_message)
def resend_notification(request, notification_id: int):
    """Send one of the lab's failed or long-pending e-mails again (the lab queue's "Send again")."""
    notifications.resend_for_lab(actor=request.user, notification_id=notification_id)
    messages.success(request, _("The e-mail is being sent again."))
    return redirect(_back_to_queue(request))


@require_GET
def lab_events(request, lab_id: int):
    """The lab calendar's events, with booker names: only for that lab's managers."""
    lab = queries.labs_managed_by(request.user).filter(pk=lab_id).first()
    if lab is None:
        return _json_error(404, "not_found", "No such lab.")
    zone = ZoneInfo(queries.lab_time_zone(lab))
    checked = _range_or_error(request, zone)
    if isinstance(checked, JsonResponse):
        return checked
    events = [{
        "start": _local_iso(b.start, zone), "end": _local_iso(b.end, zone),
        "title": f"{b.instrument.name_zh} · {b.user.display_name}", "url": reverse("bookings:detail", args=[b.pk]),
        "classNames": [f"state-{b.state}", f"instrument-{b.instrument_id % 8}"],
        "extendedProps": {"state": b.get_state_display(), "utcStart": b.start.isoformat(), "utcEnd": b.end.isoformat()},
    } for b in queries.lab_calendar_bookings(request.user, lab.pk, *checked)[:2000]]
    return JsonResponse(events, safe=False)


# --- feed links -----------------------------------------------------------------------------------


@login_required
@require_POST
@refusals_return_to("bookings:mine", message=rule_message)
def create_feed(request):
    scope = request.POST.get("scope") or FeedToken.Scope.MINE
    lab_id = _int(request.POST.get("lab"))
    token, plain = services.create_feed_token(user=request.user, scope=scope, lab_id=lab_id)
    url = request.build_absolute_uri(reverse("bookings:private_feed", args=[plain]))
    back = reverse("bookings:lab_queue") + f"?lab={token.lab_id}" if token.lab_id else reverse("bookings:mine")
    # The secret is shown on this response only; it is stored as a digest.
    response = render(request, "bookings/feed_created.html", {"token": token, "url": url, "back": back})
    response["Cache-Control"] = "no-store"
    return response


def _back_to_mine(request, **_kwargs) -> str:
    return _next_url(request, reverse("bookings:mine"))


@login_required
@require_POST
@refusals_return_to(_back_to_mine, message=rule_message)
def revoke_feed(request, feed_id: int):
    services.revoke_feed_token(user=request.user, feed_id=feed_id)
    messages.success(request, _("Feed link revoked: calendars subscribed to it stop updating."))
    return redirect(_back_to_mine(request))


# --- calendar feeds -------------------------------------------------------------------------------


def _calendar(request, feed, cache_control: str) -> HttpResponse:
    """A feed's response with its ETag (of the bytes) and Last-Modified (its latest change), on GET and HEAD
    alike: a calendar polling with If-None-Match or If-Modified-Since gets a 304, not megabytes."""
    response = HttpResponse(b"" if request.method == "HEAD" else feed.body, content_type=CALENDAR)
    response["Content-Length"] = str(len(feed.body))
    response["Cache-Control"] = cache_control
    etag = quote_etag(hashlib.md5(feed.body, usedforsecurity=False).hexdigest())
    last_modified = int(feed.last_modified.timestamp()) if feed.last_modified else None
    response["ETag"] = etag
    if last_modified:
        response["Last-Modified"] = http_date(last_modified)
    return get_conditional_response(request, etag=etag, last_modified=last_modified, response=response)


@require_safe
def private_feed(request, token: str):
    feed = queries.private_feed(token)
    if feed is None:
        raise Http404("No such feed.")
    return _calendar(request, feed, "private, max-age=300")


@require_safe
def instrument_feed(request, instrument_id: int):
    instrument = get_object_or_404(Instrument, pk=instrument_id, listing_state=Instrument.ListingState.PUBLISHED)
    return _calendar(request, queries.public_instrument_feed(instrument), "public, max-age=300")

