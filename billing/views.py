"""Billing pages: finance (periods with a live progress bar, invoices, payments, exports, vouchers,
subsidies), my bills (what my use cost, my projects' spend, my company's invoices and vouchers), one
invoice (HTML, PDF, pay online). Thin: reads from ``queries``, each write one service call."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.ratelimit import rate_limit
from instrumentshare.core.errors import DomainError
from instrumentshare.core.pages import refusals_return_to

from . import pdf, queries, services, subsidies
from . import stripe_gateway as gateway
from .api import export_response, statement_row
from .forms import CloseForm, CreditNoteForm, ExportForm, TransferForm, VoucherForm, WaiveForm
from .models import BillingAccount, Invoice
from .services import closing, payments

ZERO = Decimal("0.00")


def _finance_only(user) -> None:
    if not queries.is_finance(user):
        raise Http404("Not found.")


def _finance_orgs(user):
    from instrumentshare.accounts.models import Organization

    if people.is_platform_admin(user):
        return Organization.objects.exclude(kind=Organization.Kind.COMPANY)
    return Organization.objects.filter(pk__in=queries.finance_org_ids(user))


def _last_month() -> str:
    first = timezone.localtime().date().replace(day=1)
    return queries.month_of(first - dt.timedelta(days=1))


def _invoice_or_404(user, invoice_id: int) -> Invoice:
    invoice = queries.visible_invoices(user).filter(pk=invoice_id).first()
    if invoice is None:
        raise Http404("No such invoice.")
    return invoice


# --- finance ----------------------------------------------------------------------------------


@login_required
@require_GET
def finance(request):
    user = request.user
    _finance_only(user)
    organizations = _finance_orgs(user)
    close_form = CloseForm(initial={"month": _last_month(), "organization": organizations.first()})
    close_form.limit_organizations(organizations.values("pk"))
    export_form = ExportForm(initial={"period": _last_month(), "format": "csv"})
    export_form.limit_organizations(organizations.values("pk"))
    period = request.GET.get("period") or ""
    invoices = queries.visible_invoices(user).filter(issuer_id__in=organizations.values("pk"))
    if period:
        invoices = invoices.filter(period=period)
    return render(request, "billing/finance.html", {
        "close_form": close_form, "export_form": export_form, "periods": queries.periods_for(user)[:24],
        "invoices": invoices[:50], "period": period,
        "payments": queries.visible_payments(user).filter(invoice__issuer_id__in=organizations.values("pk"))
        .order_by("-created_at")[:20],
        "stripe_enabled": gateway.enabled(),
    })


@login_required
@require_POST
@refusals_return_to("billing:finance")
def close(request):
    user = request.user
    _finance_only(user)
    form = CloseForm(request.POST)
    form.limit_organizations(_finance_orgs(user).values("pk"))
    if not form.is_valid():
        messages.error(request, "; ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("billing:finance")
    period = closing.request_close(actor=user, organization_id=form.cleaned_data["organization"].pk,
                                   month=form.cleaned_data["month"])
    messages.success(request, _("Closing %(month)s has started.") % {"month": period.month})
    return redirect(f"{reverse('billing:finance')}#period-{period.pk}")


@login_required
@require_GET
def period_progress(request, period_id: int):
    period = queries.periods_for(request.user).filter(pk=period_id).first()
    if period is None:
        raise Http404("No such period.")
    return render(request, "billing/_period_row.html", {"period": period})


@login_required
@require_GET
@rate_limit("RATE_LIMIT_EXPORTS")
def exports_download(request):
    user = request.user
    _finance_only(user)
    form = ExportForm(request.GET)
    form.limit_organizations(_finance_orgs(user).values("pk"))
    if not form.is_valid():
        messages.error(request, "; ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("billing:finance")
    organization = form.cleaned_data.get("organization")
    return export_response(user, period=form.cleaned_data["period"], format=form.cleaned_data["format"],
                           organization_id=organization.pk if organization else None,
                           lang="en" if translation.get_language() == "en" else "zh")   # the page's language


@login_required
@require_GET
def payments_page(request):
    user = request.user
    _finance_only(user)
    rows = queries.visible_payments(user).filter(invoice__issuer_id__in=_finance_orgs(user).values("pk"))
    return render(request, "billing/payments.html", {"payments": rows.order_by("-created_at")[:200]})


@login_required
@require_GET
def subsidy_report(request):
    user = request.user
    _finance_only(user)
    try:
        year = int(request.GET.get("year") or timezone.localtime().year)
    except ValueError:
        year = timezone.localtime().year
    report = subsidies.report(year)
    if not people.is_platform_admin(user):
        mine = queries.finance_org_ids(user)
        report["providers"] = [line for line in report["providers"] if line.organization.pk in mine]
        report["enterprises"] = [line for line in report["enterprises"] if line.organization.pk in mine]
    return render(request, "billing/subsidies.html", {"report": report, "year": year})


# --- invoices ---------------------------------------------------------------------------------


@login_required
@require_GET
def invoice_detail(request, invoice_id: int):
    user = request.user
    invoice = _invoice_or_404(user, invoice_id)
    issuer_finance = queries.is_issuer_finance(user, invoice)
    return render(request, "billing/invoice.html", {
        "invoice": invoice, "lines": queries.invoice_lines(invoice),
        "charges": queries.invoice_charges(invoice) if issuer_finance or people.is_platform_admin(user) else None,
        "payments": queries.payments_of(invoice), "credit_notes": invoice.credit_notes.all(),
        "can_pay": queries.can_pay(user, invoice) and invoice.outstanding > 0 and gateway.enabled(),
        "pay_by_transfer": queries.can_pay(user, invoice) and invoice.outstanding > 0 and not gateway.enabled(),
        "issuer_finance": issuer_finance, "credit_form": CreditNoteForm(), "transfer_form": TransferForm(),
    })


@login_required
@require_GET
@rate_limit("RATE_LIMIT_EXPORTS")
def invoice_pdf(request, invoice_id: int):
    invoice = _invoice_or_404(request.user, invoice_id)
    response = HttpResponse(pdf.render(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
    return response


@login_required
@require_POST
@refusals_return_to("billing:invoice")
def credit_note(request, invoice_id: int):
    _invoice_or_404(request.user, invoice_id)
    form = CreditNoteForm(request.POST)
    if form.is_valid():
        note = closing.issue_credit_note(actor=request.user, invoice_id=invoice_id,
                                         reason=form.cleaned_data["reason"], amount=form.cleaned_data["amount"])
        messages.success(request, _("Credit note %(number)s issued.") % {"number": note.number})
        return redirect("billing:invoice", invoice_id=note.pk)
    else:
        messages.error(request, _("Give a reason."))
    return redirect("billing:invoice", invoice_id=invoice_id)


@login_required
@require_POST
@refusals_return_to("billing:invoice")
def record_transfer(request, invoice_id: int):
    _invoice_or_404(request.user, invoice_id)
    form = TransferForm(request.POST)
    if form.is_valid():
        closing.record_transfer(actor=request.user, invoice_id=invoice_id, amount=form.cleaned_data["amount"],
                                reference=form.cleaned_data["reference"])
        messages.success(request, _("Payment recorded."))
    else:
        messages.error(request, _("Give the amount and the bank reference."))
    return redirect("billing:invoice", invoice_id=invoice_id)


@login_required
@require_POST
@refusals_return_to("billing:invoice")
def pay(request, invoice_id: int):
    """Create (or reuse) the PaymentIntent, then show Stripe's Payment Element to confirm it."""
    invoice = _invoice_or_404(request.user, invoice_id)
    payment = payments.start_online_payment(user=request.user, invoice_id=invoice_id)
    return render(request, "billing/pay.html", {
        "invoice": invoice, "payment": payment, "publishable_key": gateway.publishable_key(),
        "return_url": request.build_absolute_uri(reverse("billing:invoice", args=[invoice.pk])),
    })


def _charge_page(request, charge_id: int) -> str:
    """Where a charge is seen: its invoice, or the finance page while it is not invoiced."""
    charge = queries.visible_charges(request.user).filter(pk=charge_id).first()
    if charge is None:
        raise Http404("No such charge.")
    return reverse("billing:invoice", args=[charge.invoice_id]) if charge.invoice_id else reverse("billing:finance")


@login_required
@require_POST
@refusals_return_to(_charge_page)
def waive(request, charge_id: int):
    form = WaiveForm(request.POST)
    back = _charge_page(request, charge_id)
    if form.is_valid():
        services.waive_charge(actor=request.user, charge_id=charge_id, reason=form.cleaned_data["reason"])
        messages.success(request, _("Charge waived."))
    return redirect(back)


# --- my bills ---------------------------------------------------------------------------------


COSTS_PER_PAGE = 50
INVOICES_SHOWN = 50


@login_required
@require_GET
def mine(request):
    user = request.user
    projects = list(queries.pi_accounts(user))
    spend = queries.spend_by_account([a.pk for a in projects])
    for account in projects:
        account.budget = queries.budget_status(account, spend.get(account.pk, ZERO))
    company_id = queries.company_id_of(user)
    company_invoices = queries.visible_invoices(user).filter(account__organization_id=company_id) \
        if company_id else Invoice.objects.none()
    vouchers = queries.visible_vouchers(user).filter(company_id=company_id) if company_id else []
    page = Paginator(queries.my_cost_items(user), COSTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "billing/mine.html", {
        "costs": queries.cost_rows(page.object_list), "costs_page": page, "totals": queries.my_cost_totals(user),
        "projects": projects, "requests": queries.pending_authorizations_for_pi(user),
        "chargeable": queries.chargeable_accounts(user), "company_invoices": company_invoices[:INVOICES_SHOWN],
        "company_totals": queries.invoice_totals(company_invoices) if company_id else None,
        "invoices_shown": INVOICES_SHOWN, "vouchers": vouchers, "is_company": bool(company_id),
    })


@login_required
@require_POST
@refusals_return_to("billing:mine")
def decide_access(request, authorization_id: int):
    services.decide_account_access(actor=request.user, authorization_id=authorization_id,
                                   approve=request.POST.get("approve") == "1")
    messages.success(request, _("Decision saved."))
    return redirect("billing:mine")


@login_required
@require_GET
def account_statement(request, account_id: int):
    user = request.user
    account = queries.visible_accounts(user).filter(pk=account_id).first()
    if account is None:
        raise Http404("No such account.")
    try:
        year = int(request.GET.get("year") or timezone.localtime().year)
    except ValueError:
        year = timezone.localtime().year
    account.budget = queries.budget_status(account)
    invoices = list(queries.visible_invoices(user).filter(account=account, issued_at__year=year)
                    .order_by("issued_at", "id"))
    charges = queries.visible_charges(user).filter(account=account, period__startswith=f"{year}-") \
        .order_by("-service_start", "-id")
    return render(request, "billing/account.html", {
        "account": account, "year": year, "invoices": invoices, "charges": charges[:300],
        "charged": sum((c.amount for c in charges), ZERO),
        "outstanding": sum((i.outstanding for i in invoices), ZERO),
        "is_cost_centre": account.kind == BillingAccount.Kind.COST_CENTRE,
    })


# --- vouchers ---------------------------------------------------------------------------------


@login_required
def vouchers(request):
    user = request.user
    is_bureau = people.is_platform_admin(user)
    if not (is_bureau or queries.is_finance(user) or queries.company_id_of(user)):
        raise Http404("Not found.")
    form = VoucherForm(request.POST or None) if is_bureau else None
    if request.method == "POST":
        if not is_bureau:
            raise Http404("Not found.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                voucher = services.issue_voucher(
                    actor=user, company=data["company"], amount=data["amount"], share_percent=data["share_percent"],
                    yearly_cap=data["yearly_cap"], valid_from=data["valid_from"], valid_until=data["valid_until"],
                    eligible_providers=list(data["eligible_providers"]))
            except DomainError as error:   # shown beside the form, which keeps what was typed
                form.add_error(None, error.detail)
            else:
                messages.success(request, _("Voucher %(number)s issued.") % {"number": voucher.number})
                return redirect("billing:voucher", voucher_id=voucher.pk)
    return render(request, "billing/vouchers.html", {"vouchers": queries.visible_vouchers(user), "form": form})


@login_required
@require_GET
def voucher_detail(request, voucher_id: int):
    voucher = queries.visible_vouchers(request.user).filter(pk=voucher_id).first()
    if voucher is None:
        raise Http404("No such voucher.")
    entries = [statement_row(entry) for entry in queries.voucher_statement(voucher, request.user)]
    return render(request, "billing/voucher.html", {
        "voucher": voucher, "entries": entries,
        "redeemed": -sum((row["amount"] for row in entries if row["kind"] != "issue"), ZERO)})
