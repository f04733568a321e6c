"""The bureau's pages (and, scoped to their own, finance officers' and lab managers'): the dashboard,
statistics tables, the evaluation, the duplicate-purchase check, national exports. Thin: reads from
``queries``/``charts``/``evaluation``, each write one service call. Not yours: 404."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import queries as catalog_queries
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab
from instrumentshare.accounts.ratelimit import rate_limit
from instrumentshare.core.errors import DomainError
from instrumentshare.core.pages import refusals_return_to

from . import charts, evaluation, national, queries, reports, services
from .conf import setting
from .forms import ExportForm, PurchaseCheckForm
from .queries import Scope

DIMENSION_LABELS = {
    "organization": gettext_lazy("Organizations"), "lab": gettext_lazy("Labs"),
    "instrument": gettext_lazy("Instruments"), "category": gettext_lazy("Categories"),
    "district": gettext_lazy("Districts"), "city": gettext_lazy("All in view"),
}


def _scope(request) -> Scope:
    scope = queries.scope_for(request.user)
    if scope.empty:
        raise Http404("Not found.")
    return scope


def _int(value) -> int | None:
    value = str(value or "")
    return int(value) if value.isdigit() and len(value) <= 12 else None


def _year(request) -> int:
    year = _int(request.GET.get("year")) or queries.current_year()
    if not 2000 <= year <= 2100:
        raise Http404("No such year.")
    return year


def _view(request, scope: Scope) -> charts.View:
    """Year, organization and lab from the address, each checked against the scope."""
    year = _year(request)
    organization_id, lab_id = _int(request.GET.get("organization")), _int(request.GET.get("lab"))
    if organization_id and not queries.organizations_in_view(scope).filter(pk=organization_id).exists():
        raise Http404("No such organization.")
    if lab_id:
        lab = Lab.objects.filter(pk=lab_id).first()
        if lab is None or not scope.sees_lab(lab):
            raise Http404("No such lab.")
    return charts.View(scope=scope, year=year, organization_id=organization_id, lab_id=lab_id)


def _filters(request, scope: Scope, view: charts.View) -> dict:
    return {
        "years": queries.years_available(),
        "organizations": queries.organizations_in_view(scope),
        "labs": queries.labs_in_view(scope, view.organization_id),
        "query": request.GET.urlencode(),
    }


def _links(user) -> dict:
    return {
        "may_evaluate": queries.evaluation_organization_ids(user) != set(),
        "may_check": queries.may_check_purchases(user),
        "is_admin": people.is_platform_admin(user),
    }


def _csv(content: bytes, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


# --- dashboard and statistics -------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request):
    scope = _scope(request)
    view = _view(request, scope)
    refresh = queries.last_refresh(view.year)
    figures = charts.dashboard_figures(view, refresh)
    compliance_rows, compliance_count = queries.non_compliant_page(
        request.user, scope, organization_id=view.organization_id, lab_id=view.lab_id, limit=queries.COMPLIANCE_ROWS)
    return render(request, "oversight/dashboard.html", {
        "view": view, **figures, "refresh": refresh, "compliance_rows": compliance_rows,
        "compliance_count": compliance_count, **_filters(request, scope, view), **_links(request.user),
    })


@login_required
@require_POST
def refresh_now(request):
    """The bureau's "refresh now": the figures are recomputed in the background, the page shows progress."""
    if not people.is_platform_admin(request.user):
        raise Http404("Not found.")
    year = _int(request.POST.get("year"))
    if year is None or not 2000 <= year <= 2100:
        messages.error(request, _("Choose a year between 2000 and 2100."))
        return redirect("oversight:dashboard")
    services.request_refresh(actor=request.user, years=[year])
    messages.success(request, _("The statistics of %(year)s are being refreshed.") % {"year": year})
    return redirect(f"{reverse('oversight:dashboard')}?year={year}")


@login_required
@require_GET
def freshness(request):
    """The freshness line alone, polled while a refresh runs; when it has finished, the page reloads."""
    _scope(request)
    year = _year(request)
    response = render(request, "oversight/_freshness_fragment.html", {"year": year})
    progress = queries.refresh_progress(year)
    if request.headers.get("HX-Request") and (not progress or progress.get("state") == "done"):
        response["HX-Refresh"] = "true"  # the new figures, at once
    return response


@login_required
@require_GET
@rate_limit("RATE_LIMIT_EXPORTS")
def chart_csv(request, key: str):
    if key not in charts.CHART_KEYS:
        raise Http404("No such chart.")
    scope = _scope(request)
    view = _view(request, scope)
    return _csv(reports.chart_csv(charts.build(key, view, full=True)), f"{key}-{view.year}")


def _statistics_rows(request, scope: Scope, view: charts.View):
    by = request.GET.get("by", "organization")
    if by not in queries.DIMENSIONS:
        raise Http404("No such grouping.")
    month = _int(request.GET.get("month"))
    if month is not None and not 1 <= month <= 12:
        raise Http404("No such month.")
    months = (month, month) if month else None
    return by, month, queries.summarize(scope, year=view.year, by=by, months=months, **view.narrowing)


@login_required
@require_GET
def statistics(request):
    scope = _scope(request)
    view = _view(request, scope)
    by, month, rows = _statistics_rows(request, scope, view)
    columns = [(str(header), kind) for header, kind, _get in queries.STAT_COLUMNS]
    table = [[charts.format_cell(get(row), kind) for _header, kind, get in queries.STAT_COLUMNS] for row in rows]
    return render(request, "oversight/statistics.html", {
        "view": view, "by": by, "month": month, "columns": columns, "table": table,
        "dimensions": [(key, DIMENSION_LABELS[key]) for key in queries.DIMENSIONS], "months": range(1, 13),
        "refresh": queries.last_refresh(view.year), **_filters(request, scope, view), **_links(request.user),
    })


@login_required
@require_GET
@rate_limit("RATE_LIMIT_EXPORTS")
def statistics_csv(request):
    scope = _scope(request)
    view = _view(request, scope)
    by, month, rows = _statistics_rows(request, scope, view)
    suffix = f"-{month:02d}" if month else ""
    return _csv(reports.stat_rows_csv(rows), f"statistics-{by}-{view.year}{suffix}")


# --- evaluation --------------------------------------------------------------------------------


def _evaluation_scope(request) -> set[int] | None:
    organization_ids = queries.evaluation_organization_ids(request.user)
    if organization_ids is not None and not organization_ids:
        raise Http404("Not found.")
    return organization_ids


@login_required
@require_GET
def evaluation_page(request):
    organization_ids = _evaluation_scope(request)
    year = _year(request)
    weights = setting("OVERSIGHT_EVALUATION_WEIGHTS")
    return render(request, "oversight/evaluation.html", {
        "year": year, "years": queries.years_available(),
        "ranked": evaluation.evaluate(year=year, organization_ids=organization_ids),
        "indicators": [(code, label, weights.get(code, 0)) for code, label in evaluation.INDICATORS],
        "thresholds": setting("OVERSIGHT_GRADE_THRESHOLDS"), "targets": setting("OVERSIGHT_EVALUATION_TARGETS"),
        "refresh": queries.last_refresh(year), **_links(request.user),
    })


@login_required
@require_GET
@rate_limit("RATE_LIMIT_EXPORTS")
def evaluation_xlsx(request):
    organization_ids = _evaluation_scope(request)
    year = _year(request)
    content = reports.evaluation_workbook(year=year, organization_ids=organization_ids)
    response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="evaluation-{year}.xlsx"'
    return response


# --- duplicate-purchase check -------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def purchase_check(request):
    user = request.user
    if not queries.may_check_purchases(user):
        raise Http404("Not found.")
    labs = catalog_queries.managed_labs(user)
    form = PurchaseCheckForm(request.POST or None, labs=labs, require_lab=not people.is_platform_admin(user))
    result = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = services.check_purchase(actor=user, lab_id=data["lab"].pk if data["lab"] else None,
                                             category_code=data["category"].pk, value=data["value"],
                                             year=data["year"])
        except DomainError as error:
            if error.status == 404:
                raise Http404(error.detail) from error
            form.add_error(None, error.detail)
    return render(request, "oversight/purchase_check.html", {
        "form": form, "result": result, "checks": queries.purchase_checks_for(user)[:50],
        "threshold": Decimal(setting("OVERSIGHT_PURCHASE_CHECK_VALUE")),
        "saturation_hours": setting("OVERSIGHT_SATURATION_HOURS"), **_links(user),
    })


# --- national exports ----------------------------------------------------------------------------


@login_required
@require_GET
def exports_page(request):
    if queries.evaluation_organization_ids(request.user) == set():
        raise Http404("Not found.")
    form = ExportForm(organizations=queries.organizations_in_view(Scope(everything=True))) \
        if people.is_platform_admin(request.user) else None
    return render(request, "oversight/exports.html", {
        "exports": queries.visible_exports(request.user)[:200], "form": form,
        "reporting": len(national.reporting_organization_ids()), **_links(request.user),
    })


@login_required
@require_POST
@refusals_return_to("oversight:exports")
def run_export(request):
    if not people.is_platform_admin(request.user):
        raise Http404("Not found.")
    form = ExportForm(request.POST, organizations=queries.organizations_in_view(Scope(everything=True)))
    if not form.is_valid():
        messages.error(request, "; ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("oversight:exports")
    period = form.cleaned_data["period"]
    organizations = [form.cleaned_data["organization"].pk] if form.cleaned_data["organization"] else \
        national.reporting_organization_ids()
    created = 0
    for organization_id in organizations:
        _export, was_created = services.export_quarter(actor=request.user, organization_id=organization_id,
                                                       period=period)
        created += was_created
    messages.success(request, _("%(period)s: %(created)s new exports, %(existing)s already there.") % {
        "period": period, "created": created, "existing": len(organizations) - created})
    return redirect(reverse("oversight:exports"))


@login_required
@require_GET
@rate_limit("RATE_LIMIT_EXPORTS")
def export_download(request, export_id: int):
    export = queries.visible_exports(request.user).filter(pk=export_id).first()
    if export is None:
        raise Http404("No such export.")
    response = HttpResponse(national.canonical_bytes(export.payload), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="national-{export.organization_id}-{export.period}.json"'
    return response
