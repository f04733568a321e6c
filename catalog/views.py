"""Catalog pages: search, the instrument page, the lab manager's pages, import, compliance. Thin."""

from __future__ import annotations

import secrets
from datetime import datetime, time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab, User
from instrumentshare.accounts.ratelimit import rate_limit
from instrumentshare.core import spreadsheets as sheets
from instrumentshare.core.errors import DomainError, Forbidden, NotFound
from instrumentshare.core.pages import attempt, refusals_return_to

from . import compliance, queries, services, spreadsheet
from .extensions import published_fees
from .forms import (
    DecisionForm,
    DowntimeForm,
    ImportForm,
    InstrumentForm,
    ListingRequestForm,
    NewInstrumentForm,
    OpeningExceptionForm,
    OpeningHoursForm,
    PhotoForm,
    PolicyForm,
    QualificationForm,
    SearchForm,
    ShareModeForm,
    TrainingDecisionForm,
    TrainingRequestForm,
    add_domain_error,
)
from .hours import weekly
from .models import BookingPolicy

# Where the bookings app can show its panel (availability, "book") on the instrument page without
# the catalog knowing about bookings: the first template of this list that exists is included.
BOOKING_PANEL_TEMPLATES = ["bookings/_instrument_panel.html", "catalog/_no_panel.html"]
# The same for the sample submissions app ("send samples").
SAMPLE_PANEL_TEMPLATES = ["submissions/_instrument_panel.html", "catalog/_no_panel.html"]
IMPORT_CACHE_SECONDS = 3600


def _managed(request, instrument_id: int):
    try:
        return queries.instrument_to_manage(request.user, instrument_id)
    except NotFound as error:
        raise Http404 from error
    except Forbidden as error:
        raise PermissionDenied(error.detail) from error


def _settle_bookings(request, instrument, run, success: str, *, what: str, back: str,
                     form=None) -> HttpResponse | bool:
    """A change that may move bookings (``catalog.impact``): a dry run first; when it affects bookings and
    the manager has not yet said what to do with them, a page lists them and asks (cancel or keep), posting
    the same change again with the decision. Otherwise the change is saved: True, or False on a refusal
    (shown beside the ``form``'s fields when there is one, else as a message)."""
    decision = request.POST.get("bookings") or None
    try:
        if decision is None:
            impact = run(dry_run=True)
            if impact.affected:
                posted = [(name, value) for name, values in request.POST.lists()
                          if name != "csrfmiddlewaretoken" for value in values]
                return render(request, "catalog/confirm_change.html", {
                    "instrument": instrument, "impact": impact, "what": what, "posted": posted,
                    "action": request.path, "back": back, "tab": "manage"})
        run(bookings=decision, notice=request.POST.get("notice", ""))
    except DomainError as error:
        if error.status == 404:
            raise Http404(error.detail) from error
        if form is not None:
            add_domain_error(form, error)
        else:
            messages.error(request, error.detail)
        return False
    messages.success(request, success)
    return True


# --- finding -------------------------------------------------------------------------------


def search(request):
    form = SearchForm(request.GET, user=request.user)
    form.is_valid()
    data = {key: value for key, value in form.cleaned_data.items() if value not in (None, "")}
    try:
        free_filter = queries.free_time_filter(data.get("free_from"), data.get("free_to"), data.get("free_hours"))
    except DomainError as error:
        form.add_error(None, error.detail)
        free_filter = None
    queryset = queries.search_instruments(
        request.user, text=data.get("q", ""), category=data.get("category", ""),
        organization=data.get("organization"), district=data.get("district", ""),
        share_mode=data.get("share_mode", ""), sort=data.get("sort", "name"), free_filter=free_filter,
    )
    page = queries.paginate(queryset, page=data.get("page", 1), count_in_page=free_filter is not None)
    context = {"form": form, "page": page, "category_path": queries.category_path(data.get("category", ""))
               if data.get("category") else []}
    return render(request, "catalog/search.html", context)


def _published_fees(instrument) -> str:
    return published_fees.call(instrument, default="")


def detail(request, instrument_id: int):
    instrument = queries.instrument_for(request.user, instrument_id)
    if instrument is None:
        raise Http404
    policy = BookingPolicy.objects.filter(instrument=instrument).first()
    user = request.user
    context = {
        "instrument": instrument,
        "policy": policy,
        # The fee standard comes from billing's rate cards where they exist (billing contributes it).
        "published_fees": _published_fees(instrument),
        "category_path": queries.category_path(instrument.category_id),
        "weekly": weekly(instrument.opening_rules.all()),
        "exceptions": queries.upcoming_exceptions(instrument)[:20],
        "downtimes": queries.upcoming_downtime(instrument)[:20],
        "can_manage": queries.can_manage(user, instrument),
        "mandatory": services.is_mandatory(instrument),
        "qualified": people.is_authenticated(user) and queries.is_qualified(user, instrument),
        "training_form": TrainingRequestForm(),
        "booking_panel_templates": BOOKING_PANEL_TEMPLATES,
        "sample_panel_templates": SAMPLE_PANEL_TEMPLATES,
    }
    return render(request, "catalog/detail.html", context)


@login_required
@require_POST
def request_training(request, instrument_id: int):
    form = TrainingRequestForm(request.POST)
    message = form.cleaned_data["message"] if form.is_valid() else ""
    try:
        services.request_training(actor=request.user, instrument_id=instrument_id, message=message)
    except NotFound as error:
        raise Http404 from error
    messages.success(request, _("Your training request was sent to the lab."))
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                require_https=request.is_secure()):
        return redirect(back)
    return redirect("catalog:detail", instrument_id)


# --- the lab manager's pages -----------------------------------------------------------------


@login_required
def training_queue(request):
    """The training requests of every instrument of the labs this manager runs: grant with an expiry, or decline."""
    if not people.managed_lab_ids(request.user):
        raise PermissionDenied
    return render(request, "catalog/training_queue.html", {
        "requests": queries.training_queue(request.user)[:500], "form": TrainingDecisionForm()})


@login_required
@require_POST
def decide_training(request, request_id: int, action: str):
    form = TrainingDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("catalog:training_queue")
    data = form.cleaned_data
    if action == "grant":
        training = queries.training_queue(request.user).filter(pk=request_id).first()
        zone = training.instrument.zone if training else timezone.get_current_timezone()
        expires = timezone.make_aware(datetime.combine(data["expires"], time(23, 59)), zone) if data["expires"] \
            else None
        attempt(request, lambda: services.grant_training_request(
            actor=request.user, training_request_id=request_id, expires_at=expires, note=data["note"]),
            _("Qualification granted; the requester is told."))
    elif action == "decline":
        attempt(request, lambda: services.decline_training_request(
            actor=request.user, training_request_id=request_id, reason=data["note"]),
            _("Training request declined; the requester is told."))
    else:
        raise Http404
    return redirect("catalog:training_queue")


@login_required
def manage(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    context = {
        "instrument": instrument,
        "mandatory": services.is_mandatory(instrument),
        "share_form": ShareModeForm(initial={"share_mode": instrument.share_mode}),
        "request_form": ListingRequestForm(),
        "requests": instrument.listing_requests.select_related("requested_by", "decided_by")[:20],
        "photo_form": PhotoForm(),
        "tab": "manage",
    }
    return render(request, "catalog/manage.html", context)


@login_required
@require_POST
def listing_action(request, instrument_id: int, action: str):
    instrument = _managed(request, instrument_id)
    actor, pk = request.user, instrument.pk
    if action == "publish":
        attempt(request, lambda: services.publish(actor=actor, instrument_id=pk), _("Published."))
    elif action == "unpublish":
        outcome = _settle_bookings(request, instrument, lambda **choice: services.unpublish(
            actor=actor, instrument_id=pk, **choice), _("Unpublished."), what=_("Unpublish the instrument"),
            back=reverse("catalog:manage", args=[pk]))
        if isinstance(outcome, HttpResponse):
            return outcome
    elif action == "share-mode":
        form = ShareModeForm(request.POST)
        if form.is_valid():
            attempt(request, lambda: services.set_share_mode(actor=actor, instrument_id=pk,
                                                              share_mode=form.cleaned_data["share_mode"]),
                     _("Share mode changed."))
    elif action == "request":
        form = ListingRequestForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Write a justification of at least 20 characters."))
        else:
            attempt(request, lambda: services.request_listing_change(
                actor=actor, instrument_id=pk, kind=form.cleaned_data["kind"],
                justification=form.cleaned_data["justification"]),
                _("Your request was sent to the platform administrator."))
    elif action == "photo":
        form = PhotoForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["photo"]
            attempt(request, lambda: services.set_photo(actor=actor, instrument_id=pk,
                                                         content=upload.read(services.MAX_PHOTO_BYTES + 1)),
                     _("Photo saved."))
    else:
        raise Http404
    return redirect("catalog:manage", pk)


@login_required
def edit(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    form = InstrumentForm(request.POST or None, instance=instrument)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_instrument(actor=request.user, instrument_id=instrument.pk,
                                       **form.service_fields(changed_only=True))
        except DomainError as error:
            form.add_domain_error(error)
        else:
            messages.success(request, _("Saved."))
            return redirect("catalog:edit", instrument.pk)
    return render(request, "catalog/form_page.html", {
        "instrument": instrument, "form": form, "tab": "edit", "title": _("Edit record")})


@login_required
def new(request):
    if not people.managed_lab_ids(request.user):
        raise PermissionDenied
    form = NewInstrumentForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        fields = form.service_fields(changed_only=False)
        lab, share_mode = fields.pop("lab"), fields.pop("share_mode")
        try:
            instrument = services.create_instrument(actor=request.user, lab=lab, share_mode=share_mode,
                                                    opening_hours=_default_hours(), **fields)
        except DomainError as error:
            form.add_domain_error(error)
        else:
            messages.success(request, _("Instrument added as a draft. Check its rules and hours, then publish it."))
            return redirect("catalog:manage", instrument.pk)
    return render(request, "catalog/form_page.html", {"form": form, "title": _("Add an instrument")})


def _default_hours() -> list[tuple[int, int, int]]:
    return [(day, 8 * 60 + 30, 17 * 60 + 30) for day in range(5)]


@login_required
def policy(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    current = BookingPolicy.objects.filter(instrument=instrument).first() or BookingPolicy(instrument=instrument)
    form = PolicyForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form.changed_data}
        outcome = _settle_bookings(request, instrument, lambda **choice: services.update_policy(
            actor=request.user, instrument_id=instrument.pk, **choice, **fields), _("Saved."),
            what=_("New booking rules"), back=reverse("catalog:policy", args=[instrument.pk]), form=form)
        if isinstance(outcome, HttpResponse):
            return outcome
        if outcome:
            return redirect("catalog:policy", instrument.pk)
    return render(request, "catalog/form_page.html", {
        "instrument": instrument, "form": form, "tab": "policy", "title": _("Booking rules")})


@login_required
def hours(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    rules = list(instrument.opening_rules.all())
    form = OpeningHoursForm(request.POST or None, rules=rules)
    exception_form = OpeningExceptionForm()
    if request.method == "POST" and form.is_valid():
        outcome = _settle_bookings(request, instrument, lambda **choice: services.set_opening_hours(
            actor=request.user, instrument_id=instrument.pk, rules=form.cleaned_data["rules"], **choice),
            _("Saved."), what=_("New opening hours"), back=reverse("catalog:hours", args=[instrument.pk]))
        if isinstance(outcome, HttpResponse):
            return outcome
        if outcome:
            return redirect("catalog:hours", instrument.pk)
    return render(request, "catalog/hours.html", {
        "instrument": instrument, "form": form, "exception_form": exception_form, "tab": "hours",
        "exceptions": queries.upcoming_exceptions(instrument)})


@login_required
@require_POST
def add_exception(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    form = OpeningExceptionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(" ".join(errors) for errors in form.errors.values()))
    else:
        data = form.cleaned_data
        outcome = _settle_bookings(request, instrument, lambda **choice: services.set_opening_exception(
            actor=request.user, instrument_id=instrument.pk, date=data["date"], closed=data["closed"],
            open_minute=data["opens_minute"], close_minute=data["closes_minute"], reason=data["reason"], **choice),
            _("Saved."), what=_("An exception to the opening hours"),
            back=reverse("catalog:hours", args=[instrument.pk]))
        if isinstance(outcome, HttpResponse):
            return outcome
    return redirect("catalog:hours", instrument.pk)


@login_required
def downtime(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    form = DowntimeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # The form's times are the instrument's local times, wherever the manager's browser is.
        start, end = (timezone.make_aware(timezone.make_naive(data[key]), instrument.zone) for key in ("start", "end"))
        outcome = _settle_bookings(request, instrument, lambda **choice: services.add_downtime(
            actor=request.user, instrument_id=instrument.pk, start=start, end=end, kind=data["kind"],
            reason=data["reason"], **choice), _("Downtime added."), what=_("Add downtime"),
            back=reverse("catalog:downtime", args=[instrument.pk]))
        if isinstance(outcome, HttpResponse):
            return outcome
        if outcome:
            return redirect("catalog:downtime", instrument.pk)
    return render(request, "catalog/downtime.html", {
        "instrument": instrument, "form": form, "tab": "downtime",
        "downtimes": queries.upcoming_downtime(instrument)})


@login_required
@require_POST
def cancel_downtime(request, instrument_id: int, downtime_id: int):
    instrument = _managed(request, instrument_id)
    attempt(request, lambda: services.cancel_downtime(actor=request.user, instrument_id=instrument.pk,
                                                       downtime_id=downtime_id), _("Downtime removed."))
    return redirect("catalog:downtime", instrument.pk)


@login_required
def qualifications(request, instrument_id: int):
    instrument = _managed(request, instrument_id)
    form = QualificationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user = User.objects.filter(username=data["username"], is_active=True).first()
        expires = (timezone.make_aware(datetime.combine(data["expires"], time(23, 59)), instrument.zone)
                   if data["expires"] else None)
        if user is None:
            form.add_error("username", _("No active user with that username."))
        elif attempt(request, lambda: services.grant_qualification(
                actor=request.user, instrument_id=instrument.pk, user=user, expires_at=expires, note=data["note"]),
                _("Qualification recorded.")):
            return redirect("catalog:qualifications", instrument.pk)
    return render(request, "catalog/qualifications.html", {
        "instrument": instrument, "form": form, "tab": "qualifications",
        "qualifications": queries.qualifications_of(instrument),
        "training_requests": queries.open_training_requests(instrument)})


@login_required
@require_POST
def qualification_action(request, instrument_id: int, item_id: int, action: str):
    instrument = _managed(request, instrument_id)
    if action == "revoke":
        outcome = _settle_bookings(request, instrument, lambda notice="", **choice: services.revoke_qualification(
            actor=request.user, qualification_id=item_id, reason=notice or request.POST.get("reason", ""),
            **choice), _("Qualification revoked."),
            what=_("Revoke a qualification"), back=reverse("catalog:qualifications", args=[instrument.pk]))
        if isinstance(outcome, HttpResponse):
            return outcome
    elif action == "decline":
        attempt(request, lambda: services.decline_training_request(actor=request.user,
                                                                    training_request_id=item_id),
                 _("Training request declined."))
    else:
        raise Http404
    return redirect("catalog:qualifications", instrument.pk)


# --- import and export ------------------------------------------------------------------------


@login_required
def import_page(request):
    if not people.managed_lab_ids(request.user):
        raise PermissionDenied
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    context = {"form": form, "limits": {"rows": sheets.MAX_ROWS}, "columns": spreadsheet.COLUMNS}
    if request.method == "POST" and request.POST.get("token"):
        return _confirm_import(request, context)
    if request.method == "POST" and form.is_valid():
        upload, lab = form.cleaned_data["file"], form.cleaned_data["lab"]
        content = upload.read(sheets.MAX_UPLOAD_BYTES + 1)
        try:
            checked = services.import_instrument_file(actor=request.user, lab=lab, data=content,
                                                      filename=upload.name, dry_run=True)
        except DomainError as error:   # the file itself: shown beside the upload field
            form.add_error("file", error.detail)
            return render(request, "catalog/import.html", context)
        context.update(result=checked.result, checked=checked, lab=lab, filename=upload.name,
                       problems=checked.problems)
        if checked.result.ok:
            # Keep the checked file for the confirming click; the import re-checks everything.
            token = secrets.token_urlsafe(16)
            cache.set(_import_key(request.user, token), (lab.pk, upload.name, content), IMPORT_CACHE_SECONDS)
            context["token"] = token
    return render(request, "catalog/import.html", context)


def _import_key(user, token: str) -> str:
    return f"catalog-import:{user.pk}:{token}"


@refusals_return_to("catalog:import")
def _confirm_import(request, context):
    key = _import_key(request.user, request.POST["token"])
    stored = cache.get(key)
    if stored is None:
        messages.error(request, _("The checked file has expired; upload it again."))
        return redirect("catalog:import")
    lab_id, filename, content = stored
    lab = Lab.objects.get(pk=lab_id)
    imported = services.import_instrument_file(actor=request.user, lab=lab, data=content, filename=filename,
                                               dry_run=False)
    cache.delete(key)
    result = imported.result
    if not result.ok:
        context.update(result=result, checked=imported, lab=lab, filename=filename, problems=imported.problems)
        return render(request, "catalog/import.html", context)
    messages.success(request, _("Imported %(count)d instruments as drafts.") % {"count": len(result.created)})
    return redirect(reverse("catalog:search") + "?" + f"organization={lab.organization_id}&sort=newest")


@login_required
@rate_limit("RATE_LIMIT_EXPORTS")
def export(request, lab_code: str, fmt: str):
    lab = Lab.objects.filter(code=lab_code).first()
    if lab is None or fmt not in sheets.CONTENT_TYPES:
        raise Http404
    if not (people.is_lab_manager(request.user, lab) or people.is_platform_admin(request.user)):
        raise PermissionDenied
    content = spreadsheet.export_instruments(queries.lab_instruments(lab), fmt=fmt)
    response = HttpResponse(content, content_type=sheets.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="instruments-{lab.code}.{fmt}"'
    return response


@login_required
def my_labs(request):
    labs = queries.managed_labs(request.user)
    if not labs:
        raise PermissionDenied
    rows = [(lab, queries.lab_instruments(lab)) for lab in labs]
    return render(request, "catalog/my_labs.html", {"rows": rows})


# --- the bureau -------------------------------------------------------------------------------


def _compliance_scope(request) -> set[int] | None:
    if not queries.may_read_compliance(request.user):
        raise PermissionDenied
    scope = queries.compliance_organization_ids(request.user)
    organization = request.GET.get("organization", "")
    if organization.isdigit():
        if scope is not None and int(organization) not in scope:
            raise PermissionDenied
        scope = {int(organization)}
    return scope


@login_required
def compliance_page(request):
    report = compliance.build_report(organization_ids=_compliance_scope(request))
    context = {
        "report": report,
        "settings": {
            "value": settings.MANDATORY_LISTING_VALUE, "days": settings.LISTING_DEADLINE_WORKING_DAYS,
            "national_value": settings.NATIONAL_REPORT_VALUE, "national_days": settings.NATIONAL_REPORT_WORKING_DAYS,
        },
        "is_admin": people.is_platform_admin(request.user),
        "pending": queries.listing_requests_for(request.user, state="pending")[:50],
    }
    return render(request, "catalog/compliance.html", context)


@login_required
@rate_limit("RATE_LIMIT_EXPORTS")
def compliance_export(request, fmt: str):
    report = compliance.build_report(organization_ids=_compliance_scope(request))
    headers, rows = compliance.export_table(report)
    if fmt == "xlsx":
        content = sheets.write_xlsx(headers, rows, title=_("Compliance"))
    elif fmt == "csv":
        content = sheets.write_csv(headers, rows)
    else:
        raise Http404
    response = HttpResponse(content, content_type=sheets.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="compliance-{report.as_of.isoformat()}.{fmt}"'
    return response


@login_required
def listing_requests(request):
    if not (people.is_platform_admin(request.user) or people.managed_lab_ids(request.user)):
        raise PermissionDenied
    return render(request, "catalog/requests.html", {
        "requests": queries.listing_requests_for(request.user)[:200],
        "is_admin": people.is_platform_admin(request.user),
        "decision_form": DecisionForm(),
    })


@login_required
@require_POST
def decide(request, request_id: int):
    form = DecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    approve = request.POST.get("decision") == "approve"
    try:
        services.decide_listing_change(actor=request.user, request_id=request_id, approve=approve, note=note)
    except Forbidden as error:
        raise PermissionDenied(error.detail) from error
    except NotFound as error:
        raise Http404 from error
    messages.success(request, _("Request approved.") if approve else _("Request rejected."))
    return redirect("catalog:listing_requests")
