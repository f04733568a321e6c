"""Reads about billing, shared by pages, the API, exports and other apps (the catalog's fee standard).

Visibility rules live here, once: a finance officer sees what their organization provides
(charges, invoices it issued) and what it pays (invoices to its accounts); a PI sees their
projects; a lab manager their lab's cost centre; a company user their company's invoices and
vouchers; the platform administrator everything.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Organization
from usage.charging import billable_quantity

from .models import (
    AccountAuthorization,
    BillingAccount,
    BillingPeriod,
    Charge,
    Invoice,
    Payment,
    RateCard,
    UserClass,
    Voucher,
    VoucherEntry,
)
from .money import ZERO, money, share_of
from .pricing import RateBook, local_day, price, user_class_for


def today(zone=None) -> dt.date:
    return timezone.localtime(timezone.now(), zone).date()


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def next_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def month_bounds(month: str, zone=None) -> tuple[dt.datetime, dt.datetime]:
    """The first instant of the month and of the next, in the display zone (China has one zone)."""
    zone = zone or timezone.get_default_timezone()
    start = dt.datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=zone)
    following = next_month(month)
    end = dt.datetime(int(following[:4]), int(following[5:7]), 1, tzinfo=zone)
    return start, end


# --- roles --------------------------------------------------------------------------------------


def finance_org_ids(user) -> set[int]:
    return people.finance_organization_ids(user)


def is_finance(user) -> bool:
    return bool(finance_org_ids(user)) or people.is_platform_admin(user)


def can_manage_org_billing(user, organization_id: int) -> bool:
    return people.is_finance_officer(user, organization_id) or people.is_platform_admin(user)


def company_id_of(user) -> int | None:
    if people.is_authenticated(user) and user.organization_id and user.organization.kind == Organization.Kind.COMPANY:
        return user.organization_id
    return None


# --- accounts -----------------------------------------------------------------------------------


def accounts() -> QuerySet[BillingAccount]:
    return BillingAccount.objects.select_related("organization", "lab", "pi")


def approved_account_ids(user) -> set[int]:
    return set(AccountAuthorization.objects.filter(user=user, state=AccountAuthorization.State.APPROVED)
               .values_list("account_id", flat=True))


def chargeable_filter(user) -> Q:
    """Accounts the user may name: their labs' cost centres, their company's payer account, the
    projects they lead, and any account whose PI (or finance) approved them."""
    condition = Q(pi=user) | Q(pk__in=approved_account_ids(user))
    condition |= Q(kind=BillingAccount.Kind.COST_CENTRE, lab_id__in=people.member_lab_ids(user))
    if user.organization_id:
        condition |= Q(kind=BillingAccount.Kind.EXTERNAL, organization_id=user.organization_id)
    return condition


def chargeable_accounts(user, day: dt.date | None = None) -> QuerySet[BillingAccount]:
    if not people.is_authenticated(user):
        return BillingAccount.objects.none()
    day = day or today()
    return accounts().filter(chargeable_filter(user), is_active=True).filter(
        Q(valid_from__isnull=True) | Q(valid_from__lte=day), Q(valid_until__isnull=True) | Q(valid_until__gte=day))


def visible_accounts(user) -> QuerySet[BillingAccount]:
    if not people.is_authenticated(user):
        return BillingAccount.objects.none()
    if people.is_platform_admin(user):
        return accounts()
    condition = chargeable_filter(user) | Q(organization_id__in=finance_org_ids(user))
    condition |= Q(kind=BillingAccount.Kind.COST_CENTRE, lab_id__in=people.managed_lab_ids(user))
    if finance_org_ids(user):
        condition |= Q(kind=BillingAccount.Kind.EXTERNAL)  # providers' finance bill companies
    return accounts().filter(condition)


def spend_by_account(account_ids) -> dict[int, Decimal]:
    rows = Charge.objects.filter(account_id__in=list(account_ids)).values("account_id").annotate(total=Sum("amount"))
    return {row["account_id"]: row["total"] or ZERO for row in rows}


def budget_status(account: BillingAccount, spent: Decimal | None = None) -> dict:
    """Spend against the cap: ``warning`` from the warning share on, ``exhausted`` at the cap (the hard stop)."""
    if spent is None:
        spent = spend_by_account([account.pk]).get(account.pk, ZERO)
    status = {"spent": money(spent), "cap": account.budget_cap, "percent": None, "warning": False, "exhausted": False}
    if account.budget_cap is not None:
        cap = account.budget_cap
        status["percent"] = int(100 * spent / cap) if cap > 0 else 100
        status["exhausted"] = spent >= cap
        status["warning"] = status["exhausted"] or spent * 100 >= cap * account.budget_warning_percent
    return status


def pi_accounts(user) -> QuerySet[BillingAccount]:
    return accounts().filter(pi=user)


def pending_authorizations_for_pi(user) -> QuerySet[AccountAuthorization]:
    return AccountAuthorization.objects.select_related("account", "user").filter(
        account__pi=user, state=AccountAuthorization.State.PENDING)


# --- rate cards ---------------------------------------------------------------------------------


def rate_cards(instrument: Instrument) -> QuerySet[RateCard]:
    return RateCard.objects.filter(instrument=instrument).prefetch_related("rates").order_by("-valid_from")


def current_rate_card(instrument: Instrument, day: dt.date | None = None) -> RateCard | None:
    day = day or today(instrument.zone)
    return rate_cards(instrument).filter(valid_from__lte=day).first()


UNIT_LABELS = {"hour": "hour", "sample": "sample", "use": "use"}
MODE_UNITS = {"per_sample": "sample", "per_use": "use"}  # every other charge mode is priced by the hour


def fee_standard(instrument: Instrument, day: dt.date | None = None) -> str:
    """The published fee standard from the rate card valid today, in the current language.

    Empty when the instrument has no rate card yet (the catalog then shows its own text).
    """
    card = current_rate_card(instrument, day)
    if card is None:
        return ""
    classes = {UserClass.INTERNAL: _("Internal"), UserClass.ACADEMIC: _("Other academic"),
               UserClass.INDUSTRY: _("Industry")}
    units = {"hour": _("hour"), "sample": _("sample"), "use": _("use")}
    lines = []
    # Only the prices the instrument's charge mode uses: a slot-booked instrument is charged by the hour,
    # so its per-sample prices would only mislead (a card without the mode's unit shows all it has).
    policy = getattr(instrument, "policy", None)
    unit = MODE_UNITS.get(policy.charge_mode, "hour") if policy is not None else None
    rates = [rate for rate in card.rates.all() if unit is None or rate.unit == unit] or list(card.rates.all())
    rates = sorted(rates, key=lambda r: (list(units).index(r.unit), list(classes).index(r.user_class)))
    for rate in rates:
        lines.append(_("%(class)s: %(price)s %(currency)s per %(unit)s") % {
            "class": classes[rate.user_class], "price": f"{rate.price:,.2f}", "currency": card.currency,
            "unit": units[rate.unit]})
    if card.minimum_charge:
        lines.append(_("Minimum charge: %(amount)s %(currency)s") % {"amount": f"{card.minimum_charge:,.2f}",
                                                                     "currency": card.currency})
    if card.assisted_surcharge:
        lines.append(_("Assisted operation: plus %(amount)s %(currency)s per unit") % {
            "amount": f"{card.assisted_surcharge:,.2f}", "currency": card.currency})
    lines.append(_("Valid from %(day)s") % {"day": card.valid_from.isoformat()})
    return "\n".join(lines)


# --- charges ------------------------------------------------------------------------------------


def charges() -> QuerySet[Charge]:
    return Charge.objects.select_related("account", "account__organization", "provider", "instrument", "user",
                                         "invoice")


def provider_charges(user) -> QuerySet[Charge]:
    if people.is_platform_admin(user):
        return charges()
    return charges().filter(provider_id__in=finance_org_ids(user))


def my_charges(user) -> QuerySet[Charge]:
    return charges().filter(user=user)


def visible_charges(user) -> QuerySet[Charge]:
    if people.is_platform_admin(user):
        return charges()
    finance = finance_org_ids(user)
    condition = Q(user=user) | Q(provider_id__in=finance) | Q(account__organization_id__in=finance)
    condition |= Q(account__pi=user) | Q(account__kind=BillingAccount.Kind.COST_CENTRE,
                                         account__lab_id__in=people.managed_lab_ids(user))
    company = company_id_of(user)
    if company:
        condition |= Q(account__organization_id=company)
    return charges().filter(condition)


def can_see_charge(user, charge: Charge) -> bool:
    return visible_charges(user).filter(pk=charge.pk).exists()


def my_cost_items(user) -> QuerySet:
    """All my billable items, newest first (a page of them at a time: ``cost_rows``)."""
    from usage.models import BillableItem

    return BillableItem.objects.filter(user=user).select_related(
        "instrument", "user__organization", "charge", "charge__invoice").order_by("-service_start", "-id")


def my_costs(user, *, limit: int = 100) -> list[dict]:
    """My recent billable items: the charge once made, until then the price it will have."""
    return cost_rows(list(my_cost_items(user)[:limit]))


def cost_rows(items) -> list[dict]:
    from .pricing import preview_cost

    items = list(items)
    open_items = [item for item in items if not hasattr(item, "charge")]
    estimates = preview_cost(open_items) if open_items else {}
    rows = []
    for item in items:
        charge = getattr(item, "charge", None)
        estimate = estimates.get(item.pk)
        rows.append({
            "item_id": item.pk, "instrument_id": item.instrument_id, "instrument_name": item.instrument.name_zh,
            "instrument": item.instrument, "service_start": item.service_start, "kind": item.kind,
            "unit": item.unit, "quantity": item.quantity, "state": item.state, "kind_label": item.get_kind_display(),
            "estimated_amount": estimate.amount if estimate and item.state == "open" else None,
            "charge_id": charge.pk if charge else None, "amount": charge.amount if charge else None,
            "voucher_amount": charge.voucher_amount if charge else None,
            "invoice_number": charge.invoice.number if charge and charge.invoice_id else None,
            "invoice_id": charge.invoice_id if charge else None,
        })
    return rows


def my_cost_totals(user) -> dict:
    """Totals of all my use, not of a page: the charges summed in the database (the rows invoices are made
    of), the part already invoiced, and the open items priced as their charge will be."""
    from .pricing import preview_cost

    charged = Charge.objects.filter(user=user).aggregate(
        charged=Sum("amount"), voucher=Sum("voucher_amount"),
        invoiced=Sum("amount", filter=Q(invoice__isnull=False)))
    open_items = my_cost_items(user).filter(state="open", charge__isnull=True)
    estimated = sum((price.amount for price in preview_cost(open_items).values() if price is not None), ZERO)
    return {"charged": charged["charged"] or ZERO, "voucher": charged["voucher"] or ZERO,
            "invoiced": charged["invoiced"] or ZERO, "estimated": estimated}


def invoice_totals(invoices: QuerySet) -> dict:
    """What a set of invoices adds up to, summed in the database over all of them (not the page shown)."""
    totals = invoices.filter(kind=Invoice.Kind.INVOICE).aggregate(
        count=Count("id"), services=Sum("subtotal"), vouchers=Sum("voucher_amount"), due=Sum("amount_due"),
        paid=Sum("amount_paid"))
    return {key: (value if value is not None else (0 if key == "count" else ZERO)) for key, value in totals.items()}


def account_spend_rows(account: BillingAccount) -> QuerySet:
    return charges().filter(account=account).order_by("-service_start", "-id")


# --- invoices -----------------------------------------------------------------------------------


def invoices() -> QuerySet[Invoice]:
    return Invoice.objects.select_related("issuer", "account", "account__organization", "credit_for")


def visible_invoices(user) -> QuerySet[Invoice]:
    if not people.is_authenticated(user):
        return Invoice.objects.none()
    if people.is_platform_admin(user):
        return invoices()
    finance = finance_org_ids(user)
    condition = Q(issuer_id__in=finance) | Q(account__organization_id__in=finance) | Q(account__pi=user)
    condition |= Q(account__kind=BillingAccount.Kind.COST_CENTRE, account__lab_id__in=people.managed_lab_ids(user))
    company = company_id_of(user)
    if company:
        condition |= Q(account__organization_id=company)
    return invoices().filter(condition)


def can_pay(user, invoice: Invoice) -> bool:
    """The payer's people pay online: the company's users, or the paying organization's finance."""
    if invoice.kind != Invoice.Kind.INVOICE or invoice.account.kind != BillingAccount.Kind.EXTERNAL:
        return False
    organization_id = invoice.account.organization_id
    return company_id_of(user) == organization_id or people.is_finance_officer(user, organization_id)


def is_issuer_finance(user, invoice: Invoice) -> bool:
    return can_manage_org_billing(user, invoice.issuer_id)


def invoice_lines(invoice: Invoice):
    return invoice.lines.select_related("instrument").order_by("position")


def invoice_charges(invoice: Invoice) -> QuerySet[Charge]:
    return Charge.objects.filter(invoice=invoice).select_related("instrument", "user", "item__service_record") \
        .order_by("service_start", "id")


def payments_of(invoice: Invoice) -> QuerySet[Payment]:
    return invoice.payments.order_by("-created_at", "-id")


def visible_payments(user) -> QuerySet[Payment]:
    return Payment.objects.select_related("invoice", "invoice__account").filter(
        invoice__in=visible_invoices(user).values("pk"))


# --- periods ------------------------------------------------------------------------------------


def periods_for(user) -> QuerySet[BillingPeriod]:
    qs = BillingPeriod.objects.select_related("organization")
    if people.is_platform_admin(user):
        return qs
    return qs.filter(organization_id__in=finance_org_ids(user))


def closed_months(organization_ids) -> dict[int, set[str]]:
    """Months already closed (or closing) per organization: charges made now go past them."""
    result: dict[int, set[str]] = {}
    rows = BillingPeriod.objects.filter(organization_id__in=list(organization_ids)).exclude(
        state__in=[BillingPeriod.State.OPEN]).values_list("organization_id", "month")
    for organization_id, month in rows:
        result.setdefault(organization_id, set()).add(month)
    return result


def open_month(month: str, closed: set[str]) -> str:
    while month in closed:
        month = next_month(month)
    return month


# --- vouchers -----------------------------------------------------------------------------------


def vouchers() -> QuerySet[Voucher]:
    return Voucher.objects.select_related("company", "issued_by").prefetch_related("eligible_providers")


def visible_vouchers(user) -> QuerySet[Voucher]:
    """The bureau sees all; a company its own; a provider's finance those redeemed at their organization."""
    if not people.is_authenticated(user):
        return Voucher.objects.none()
    if people.is_platform_admin(user):
        return vouchers()
    condition = Q(pk__in=VoucherEntry.objects.filter(charge__provider_id__in=finance_org_ids(user))
                  .values("voucher_id"))
    company = company_id_of(user)
    if company:
        condition |= Q(company_id=company)
    condition |= Q(company_id__in=finance_org_ids(user))
    return vouchers().filter(condition)


def voucher_statement(voucher: Voucher, user) -> QuerySet[VoucherEntry]:
    """The ledger with its service records and invoices; a provider sees only its own redemptions."""
    rows = voucher.entries.select_related("charge", "charge__instrument", "charge__provider", "charge__item",
                                          "charge__item__service_record", "invoice").order_by("id")
    if people.is_platform_admin(user) or company_id_of(user) == voucher.company_id or people.is_finance_officer(
            user, voucher.company_id):
        return rows
    return rows.filter(charge__provider_id__in=finance_org_ids(user))


def voucher_used_in_year(company_id: int, year: int) -> Decimal:
    total = VoucherEntry.objects.filter(voucher__company_id=company_id, year=year,
                                        kind__in=[VoucherEntry.Kind.REDEEM, VoucherEntry.Kind.REVERSE]) \
        .aggregate(total=Sum("amount"))["total"]
    return -(total or ZERO)


# --- what a booking will cost, before it is made --------------------------------------------------

def booking_estimate(*, user, instrument: Instrument, start: dt.datetime, end: dt.datetime) -> dict | None:
    """What a booking of [start, end) will cost this user if used as booked: the rate card valid on its day,
    the user's class, the instrument's charge mode, minimum charge minutes and rounding, the card's minimum
    and one rounding (the same ``usage.charging`` and ``billing.pricing`` functions the charge will use), less
    the share of a voucher the user's company holds for it. None when no rate card applies."""
    policy = instrument.policy
    day = local_day(start, instrument.zone)
    card = RateBook.load([instrument.pk]).card_for(instrument.pk, day)
    if card is None:
        return None
    minutes = max(int((end - start).total_seconds() // 60), 0)
    quantity = billable_quantity(
        charge_mode=policy.charge_mode, kind="booking", booked_minutes=minutes, used_minutes=minutes, samples=1,
        min_charge_minutes=policy.min_charge_minutes, rounding_minutes=policy.rounding_minutes,
        no_show_percent=policy.no_show_charge_percent, late_cancel_percent=policy.late_cancel_charge_percent)
    user_class = user_class_for(is_internal=catalog_queries.is_internal_user(user, instrument),
                                organization=user.organization if user.organization_id else None)
    priced = price(card=card, user_class=user_class, unit=quantity.unit, quantity=quantity.quantity, kind="booking",
                   assisted=False)
    if priced is None:
        return None
    voucher_share = _voucher_share(user, instrument, day, priced.amount)
    return {"amount": priced.amount, "currency": priced.currency, "user_class": user_class,
            "charge_mode": policy.charge_mode, "unit": priced.unit, "quantity": priced.quantity,
            "unit_price": priced.unit_price, "minimum_applied": priced.minimum_applied, "rate_card_id": card.pk,
            "valid_from": card.valid_from, "voucher_share": voucher_share, "to_pay": priced.amount - voucher_share,
            "late_cancel_percent": policy.late_cancel_charge_percent,
            "cancellation_window_hours": policy.cancellation_window_hours}


def _voucher_share(user, instrument: Instrument, day: dt.date, amount: Decimal) -> Decimal:
    """The share the company's first voucher valid that day would pay, within its balance (an estimate:
    the yearly cap and other charges of the same invoice are settled when the period closes)."""
    company_id = company_id_of(user)
    if not company_id or amount <= 0:
        return ZERO
    candidates = (Voucher.objects.filter(company_id=company_id, state=Voucher.State.ACTIVE, valid_from__lte=day,
                                         valid_until__gte=day, balance__gt=0)
                  .prefetch_related("eligible_providers").order_by("valid_until", "id"))
    for voucher in candidates:
        providers = {organization.pk for organization in voucher.eligible_providers.all()}
        if providers and instrument.organization_id not in providers:
            continue
        return min(share_of(amount, voucher.share_percent), voucher.balance)
    return ZERO
