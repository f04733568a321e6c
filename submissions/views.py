"""Pages of sample submissions: send samples, my requests, the lab's work queue, one request with its
history and the moves open to whoever looks at it, file downloads. Thin: every write is one service call;
a refusal is a message on the request's page (``instrumentshare.core.pages``)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from catalog import queries as catalog_queries
from instrumentshare.accounts.models import User
from instrumentshare.core.errors import DomainError
from instrumentshare.core.pages import refusals_return_to

from . import queries, services
from .api import LINK_SALT, file_response
from .forms import FileForm, QuoteForm, RatingForm, ReasonForm, ReceiveForm, RequestForm, ScheduleForm
from .models import SampleRequest
from .services.common import is_lab, is_requester_side


def _request_or_404(user, request_id: int) -> SampleRequest:
    try:
        return queries.request_for(user, request_id)
    except DomainError as error:
        raise Http404(error.detail) from error


def _back(request, *, request_id: int, **kwargs) -> str:
    return reverse("submissions:detail", args=[request_id])


@login_required
def new(request, instrument_id: int):
    instrument = catalog_queries.instrument_for(request.user, instrument_id)
    if instrument is None:
        raise Http404("No such instrument.")
    analyses = list(queries.analyses_of(instrument))
    form = RequestForm(request.POST or None, analyses=analyses)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = services.create_request(
                user=request.user, instrument_id=instrument.pk, sample_count=data["sample_count"],
                sample_type=data["sample_type"], sample_state=data["sample_state"],
                analysis_ids=[int(pk) for pk in data["analyses"]], hazards=data["hazards"],
                safety_statement=data["safety_statement"], after_use=data["after_use"], note=data["note"])
        except DomainError as error:
            if error.status == 404:
                raise Http404(error.detail) from error
            form.add_error(None, error.detail)
        else:
            messages.success(request, _("Request sent. The lab will quote it."))
            return redirect("submissions:detail", created.pk)
    return render(request, "submissions/new.html", {"instrument": instrument, "form": form, "analyses": analyses,
                                                    "service": services.service_of(instrument)})


@login_required
@require_GET
def mine(request):
    return render(request, "submissions/mine.html", {"requests": queries.my_requests(request.user)[:200],
                                                     "now": timezone.now()})


@login_required
@require_GET
def lab_queue(request):
    state = request.GET.get("state") or None
    if state not in SampleRequest.State.values:
        state = None
    return render(request, "submissions/lab_queue.html", {
        "requests": queries.lab_queue(request.user, state=state)[:500], "state": state,
        "states": SampleRequest.State.choices, "now": timezone.now()})


@login_required
@require_POST
def receive_many(request):
    ids = [int(value) for value in request.POST.getlist("request_ids") if value.isdigit()]
    outcome = services.receive_many(actor=request.user, request_ids=ids)
    received = sum(1 for value in outcome.values() if value == "received")
    messages.success(request, _("%(count)s requests received.") % {"count": received})
    refused = len(outcome) - received
    if refused:
        messages.error(request, _("%(count)s requests could not be received (wrong state or not yours).")
                       % {"count": refused})
    return redirect("submissions:lab_queue")


@login_required
@require_GET
def detail(request, request_id: int):
    sample_request = _request_or_404(request.user, request_id)
    user = request.user
    lab, requester = is_lab(user, sample_request), is_requester_side(user, sample_request)
    context = {
        "req": sample_request, "is_lab": lab, "is_requester": requester, "now": timezone.now(),
        "quote": getattr(sample_request, "quote", None), "zone": sample_request.instrument.zone,
        "files": list(sample_request.attachments.all()), "history": list(sample_request.events.all()),
        "quote_form": QuoteForm(request=sample_request) if lab else None,
        "receive_form": ReceiveForm(initial={"received_count": sample_request.sample_count}),
        "schedule_form": ScheduleForm(), "reason_form": ReasonForm(), "file_form": FileForm(),
        "rating_form": RatingForm(),
    }
    return render(request, "submissions/detail.html", context)


def _local(value, sample_request: SampleRequest):
    """A wall-clock time from a form, read in the instrument's zone."""
    return value.replace(tzinfo=None).replace(tzinfo=sample_request.instrument.zone)


def _quote(request, sample_request: SampleRequest):
    form = QuoteForm(request.POST, request=sample_request)
    if not form.is_valid():
        raise DomainError("invalid", "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    items = [services.ItemIn(f"{a.name_zh} {a.name_en}".strip(), sample_request.sample_count,
                             form.cleaned_data[f"price_{a.pk}"], "sample", a.pk) for a in form.lines]
    services.quote_request(actor=request.user, request_id=sample_request.pk, items=items,
                           valid_until=form.cleaned_data["valid_until"],
                           discount_percent=form.cleaned_data["discount_percent"], note=form.cleaned_data["note"])


def _receive(request, sample_request: SampleRequest):
    form = ReceiveForm(request.POST)
    data = form.cleaned_data if form.is_valid() else {}
    services.receive_samples(actor=request.user, request_id=sample_request.pk,
                             received_count=data.get("received_count"), discrepancy=data.get("discrepancy", ""))


def _schedule(request, sample_request: SampleRequest):
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        raise DomainError("invalid", _("Give the start and the end."))
    services.schedule_work(actor=request.user, request_id=sample_request.pk,
                           start=_local(form.cleaned_data["start"], sample_request),
                           end=_local(form.cleaned_data["end"], sample_request))


def _upload(request, sample_request: SampleRequest):
    upload = request.FILES.get("file")
    if upload is None:
        raise DomainError("file_required", _("Choose a file."))
    if upload.size > settings.SUBMISSION_FILE_MAX_BYTES:
        raise DomainError("file_too_large", _("The file is too large."))
    services.add_attachment(actor=request.user, request_id=sample_request.pk, name=upload.name,
                            content=upload.read(settings.SUBMISSION_FILE_MAX_BYTES + 1))


def _reason(request) -> str:
    form = ReasonForm(request.POST)
    return form.cleaned_data["reason"] if form.is_valid() else ""


def _rate(request, sample_request: SampleRequest):
    form = RatingForm(request.POST)
    if not form.is_valid():
        raise DomainError("invalid_rating", _("Choose from one to five stars."))
    services.rate_request(user=request.user, request_id=sample_request.pk, rating=form.cleaned_data["rating"])


MOVES = {
    "quote": _quote,
    "accept": lambda request, r: services.accept_quote(actor=request.user, request_id=r.pk),
    "decline": lambda request, r: services.decline_quote(actor=request.user, request_id=r.pk, reason=_reason(request)),
    "receive": _receive,
    "schedule": _schedule,
    "start": lambda request, r: services.start_work(actor=request.user, request_id=r.pk),
    "upload": _upload,
    "deliver": lambda request, r: services.deliver_results(actor=request.user, request_id=r.pk),
    "complete": lambda request, r: services.complete_request(actor=request.user, request_id=r.pk),
    "cancel": lambda request, r: services.cancel_request(actor=request.user, request_id=r.pk, reason=_reason(request)),
    "reject": lambda request, r: services.reject_request(actor=request.user, request_id=r.pk, reason=_reason(request)),
    "rate": _rate,
}


@login_required
@require_POST
@refusals_return_to(_back)
def act(request, request_id: int, move: str):
    if move not in MOVES:
        raise Http404("No such move.")
    sample_request = _request_or_404(request.user, request_id)
    MOVES[move](request, sample_request)
    messages.success(request, _("Done."))
    return redirect("submissions:detail", request_id)


@login_required
@require_GET
def download(request, request_id: int, file_id: int):
    try:
        attachment = services.attachment_for(request.user, file_id)
    except DomainError as error:
        raise Http404(error.detail) from error
    if attachment.request_id != request_id:
        raise Http404("No such file.")
    return file_response(attachment)


@require_GET
def signed_download(request, token: str):
    """A signed link from the API: valid for SUBMISSION_LINK_SECONDS, for the user it was made for, and
    only while that user may still see the request (a link outlives no access)."""
    try:
        data = signing.TimestampSigner(salt=LINK_SALT).unsign_object(token, max_age=settings.SUBMISSION_LINK_SECONDS)
        user = User.objects.get(pk=data["user"], is_active=True)
        attachment = services.attachment_for(user, int(data["file"]))
    except (signing.BadSignature, User.DoesNotExist, KeyError, TypeError, ValueError, DomainError) as error:
        raise Http404("No such file, or the link has expired.") from error
    return file_response(attachment)
