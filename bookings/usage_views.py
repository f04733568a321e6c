"""Usage pages: check in and out of a booking, and the lab manager's review of flagged usage."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from instrumentshare.accounts import queries as people
from instrumentshare.core.errors import DomainError

from . import usage
from .models import ReviewFlag, UsageSession


def _act(request, booking_id: int, action) -> None:
    try:
        action()
    except DomainError as error:
        if error.status == 404:
            raise Http404(error.detail) from error
        messages.error(request, error.detail)


@login_required
@require_POST
def check_in(request, booking_id: int):
    _act(request, booking_id, lambda: usage.check_in(user=request.user, booking_id=booking_id))
    if not list(messages.get_messages(request)):
        messages.success(request, _("Checked in. Check out when you are done."))
    return redirect("bookings:detail", booking_id)


@login_required
@require_POST
def check_out(request, booking_id: int):
    try:
        samples = max(int(request.POST.get("samples") or 0), 0)
    except ValueError:
        samples = 0
    _act(request, booking_id, lambda: usage.check_out(user=request.user, booking_id=booking_id, samples=samples))
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
            minutes = request.POST.get("minutes")
            usage.resolve_flag(actor=request.user, flag_id=int(request.POST.get("flag", "0") or 0),
                               decision=request.POST.get("decision", ""), reason=request.POST.get("reason", ""),
                               minutes=int(minutes) if minutes not in (None, "") else None)
        except (DomainError, ValueError) as error:
            messages.error(request, getattr(error, "detail", _("Give the billable minutes as a whole number.")))
        else:
            messages.success(request, _("Decision recorded."))
        return redirect("bookings:review")
    flags = (ReviewFlag.objects.filter(instrument__lab_id__in=lab_ids, state=ReviewFlag.State.OPEN)
             .select_related("instrument", "booking__user", "session__user").order_by("-created_at")[:300])
    sessions = (UsageSession.objects.filter(instrument__lab_id__in=lab_ids).select_related("instrument", "user",
                                                                                         "booking")
                .order_by("-start")[:100])
    return render(request, "bookings/review.html", {"flags": flags, "sessions": sessions})
