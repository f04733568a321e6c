"""Usage pages: check in and out of a booking, the booking page's "Use" panel, and the lab manager's
review of flagged usage."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from instrumentshare.accounts import queries as people
from instrumentshare.core.pages import attempt, refusals_return_to

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
    """Flagged usage of the labs I manage: accept, correct (with a reason and minutes) or waive."""
    lab_ids = people.managed_lab_ids(request.user)
    if not lab_ids:
        raise Http404("Not a lab manager.")
    if request.method == "POST":
        try:
            flag_id, minutes = int(request.POST.get("flag", "0") or 0), request.POST.get("minutes")
            minutes = int(minutes) if minutes not in (None, "") else None
        except ValueError:
            messages.error(request, _("Give the billable minutes as a whole number."))
        else:
            attempt(request, lambda: review_services.resolve_flag(
                actor=request.user, flag_id=flag_id, decision=request.POST.get("decision", ""),
                reason=request.POST.get("reason", ""), minutes=minutes), _("Decision recorded."), named_in_form=True)
        return redirect("usage:review")
    flags = (ReviewFlag.objects.filter(instrument__lab_id__in=lab_ids, state=ReviewFlag.State.OPEN)
             .select_related("instrument", "booking__user", "session__user").order_by("-created_at")[:300])
    sessions = (UsageSession.objects.filter(instrument__lab_id__in=lab_ids).select_related("instrument", "user",
                                                                                         "booking")
                .order_by("-start")[:100])
    return render(request, "usage/review.html", {"flags": flags, "sessions": sessions})
