"""Usage pages: check in and out of a booking, the booking page's "Use" panel, and the lab manager's
review of flagged usage."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from instrumentshare.accounts import queries as people
from instrumentshare.core.pages import attempt, refusals_return_to

from . import queries
from .models import ReviewFlag, UsageSession
from .services import review as review_services
from .services import sessions as session_services


def booking_panel(request, booking, *, is_booker: bool, is_lab: bool, now) -> str:
    """The booking page's "Use" section (bookings.extensions.booking_page_panels): check in while the
    window is open, check out of an open check-in, and the sessions recorded, for the booker and the lab."""
    sessions = list(UsageSession.objects.filter(booking=booking).order_by("start")) if (is_booker or is_lab) else []
    checked_in = any(s.source == UsageSession.Source.CHECKIN for s in sessions)
    open_session = next((s for s in sessions if s.end is None and s.source == UsageSession.Source.CHECKIN), None)
    context = {
        "booking": booking, "instrument": booking.instrument, "is_booker": is_booker, "sessions": sessions,
        "may_check_in": is_booker and not checked_in and session_services.may_check_in(booking, now),
        "may_check_out": is_booker and open_session is not None,
        "check_in_opens": session_services.check_in_opens(booking),
    }
    if not (context["may_check_in"] or context["may_check_out"] or sessions):
        return ""
    return render_to_string("usage/_booking_panel.html", context, request=request)


@login_required
@require_POST
@refusals_return_to("bookings:detail")
def check_in(request, booking_id: int):
    session_services.check_in(user=request.user, booking_id=booking_id)
    messages.success(request, _("Checked in. Check out when you are done."))
    return redirect("bookings:detail", booking_id)


@login_required
@require_POST
@refusals_return_to("bookings:detail")
def check_out(request, booking_id: int):
    try:
        samples = max(int(request.POST.get("samples") or 0), 0)
    except ValueError:
        samples = 0
    session_services.check_out(user=request.user, booking_id=booking_id, samples=samples)
    messages.info(request, _("Checked out."))
    return redirect("bookings:detail", booking_id)


@login_required
def review(request):
    """Open flags of the labs I manage in one table: accept, correct (with a reason and minutes) or waive
    one, or accept the selected ones at once."""
    lab_ids = people.managed_lab_ids(request.user)
    if not lab_ids:
        raise Http404("Not a lab manager.")
    if request.method == "POST":
        if request.POST.get("action") == "accept_selected":
            _accept_selected(request)
        else:
            _decide_one(request)
        return redirect("usage:review")
    flags = list(queries.open_flags(lab_ids)[:queries.REVIEW_LIMIT])
    last_use = queries.last_use_by_booking([flag.booking_id for flag in flags if flag.booking_id])
    return render(request, "usage/review.html", {
        "rows": [_review_row(flag, last_use.get(flag.booking_id)) for flag in flags],
        "limit": queries.REVIEW_LIMIT, "sessions": queries.recent_sessions(lab_ids)})


def _decide_one(request) -> None:
    try:
        flag_id, minutes = int(request.POST.get("flag", "0") or 0), request.POST.get("minutes")
        minutes = int(minutes) if minutes not in (None, "") else None
    except ValueError:
        messages.error(request, _("Give the billable minutes as a whole number."))
        return
    attempt(request, lambda: review_services.resolve_flag(
        actor=request.user, flag_id=flag_id, decision=request.POST.get("decision", ""),
        reason=request.POST.get("reason", ""), minutes=minutes), _("Decision recorded."), named_in_form=True)


def _accept_selected(request) -> None:
    try:
        flag_ids = [int(value) for value in request.POST.getlist("selected")]
    except ValueError:
        messages.error(request, _("Select the flags to accept."))
        return
    count = len(set(flag_ids))  # all or none: when it succeeds, every selected flag is accepted
    attempt(request, lambda: review_services.accept_flags(actor=request.user, flag_ids=flag_ids),
            ngettext("%(count)d flag accepted.", "%(count)d flags accepted.", count) % {"count": count},
            named_in_form=True)


def _review_row(flag: ReviewFlag, last_use) -> dict:
    """A flag as the review table shows it: the day of use and what happened, in the instrument's zone
    and the page's language (the stored ``detail`` is the reconciler's English note, kept for the API)."""
    zone = flag.instrument.zone
    booking, session = flag.booking, flag.session

    def at(value):
        return timezone.localtime(value, zone).strftime("%H:%M") if value else "—"

    used = booking.start if booking else (session.start or session.end) if session else flag.created_at
    details = {
        ReviewFlag.Kind.NO_SHOW: lambda: _("No use recorded; booked %(start)s–%(end)s."),
        ReviewFlag.Kind.OVERRUN: lambda: _("Used until %(last)s; booked until %(end)s."),
        ReviewFlag.Kind.EARLY_FINISH: lambda: _("Finished at %(last)s; booked until %(end)s."),
        ReviewFlag.Kind.UNBOOKED: lambda: _("Used %(start)s–%(end)s without a booking."),
        ReviewFlag.Kind.OPEN_SESSION: lambda: _("Started %(start)s and left open; closed after %(hours)d h."),
        ReviewFlag.Kind.STOP_WITHOUT_START: lambda: _("Stopped at %(end)s; the start never arrived."),
    }
    span = booking or session
    values = {"start": at(span.start if span else None), "end": at(span.end if span else None), "last": at(last_use),
              "hours": settings.USAGE_OPEN_SESSION_LIMIT_HOURS}
    text = details.get(flag.kind)
    return {"flag": flag, "date": timezone.localtime(used, zone).date(), "zone": flag.instrument.time_zone,
            "detail": text() % values if text and span else flag.detail}
