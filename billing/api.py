"""Billing API (/api/v1/billing): accounts, rate cards, charges, periods, invoices, payments, exports,
vouchers, post-subsidies, and Stripe's webhook. Thin: reads come from ``queries``, writes are one
service call. What the caller may not see is a 404."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from django.http import HttpResponse, StreamingHttpResponse
from ninja import Field, Query, Router, Schema, Status

from catalog import queries as catalog_queries
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.auth import PUBLIC_AUTH
from instrumentshare.accounts.models import Organization, User
from instrumentshare.accounts.ratelimit import export_throttle
from instrumentshare.core.errors import Forbidden, Invalid, NotFound
from instrumentshare.core.input_rules import NO_CONTROL_CHARACTERS
from instrumentshare.core.schemas import BoundedDate, Money, PositiveMoney, PositivePercent, SignedMoney, StrictSchema

from . import exports, pdf, queries, services, subsidies
from . import stripe_gateway as gateway
from .models import BillingAccount, Charge, Invoice, Voucher
from .services import closing, payments

router = Router(tags=["billing"])

MONTH_PATTERN = r"^20\d{2}-(0[1-9]|1[0-2])$"
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


# Lists without pages of their own are windows: at most this many rows per request, then ``offset``.
MAX_LIST_ROWS = 500
Limit = Query(MAX_LIST_ROWS, ge=1, le=MAX_LIST_ROWS)
Offset = Query(0, ge=0, le=10_000_000)


def Text(max_length: int, min_length: int = 0, default=...):  # noqa: N802 - reads as a type
    """A string under the string rule (``core.input_rules``: no control characters but tab and line breaks)."""
    return Field(default, min_length=min_length, max_length=max_length, pattern=NO_CONTROL_CHARACTERS)


# --- schemas ----------------------------------------------------------------------------------


class BudgetOut(Schema):
    spent: Decimal
    cap: Decimal | None
    percent: int | None
    warning: bool
    exhausted: bool


class AccountOut(Schema):
    id: int
    kind: str
    organization_id: Id
    organization_name: str
    lab_id: int | None
    number: str
    name: str
    funding_programme: str
    pi_id: int | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    budget_cap: Decimal | None
    budget_warning_percent: int
    billing_name: str
    billing_address: str
    tax_number: str
    contact_name: str
    contact_email: str
    contact_phone: str
    currency: str
    is_active: bool

    @staticmethod
    def resolve_organization_name(obj: BillingAccount) -> str:
        return obj.organization.name_zh


class AccountDetailOut(AccountOut):
    budget: BudgetOut


class AccountIn(StrictSchema):
    kind: str = Field(..., pattern="^(cost_centre|project|external)$")
    organization_id: Id
    lab_id: Id | None = None
    number: str = Text(60, 1)
    name: str = Text(200, 1)
    funding_programme: str = Text(200, default="")
    pi_id: Id | None = None
    valid_from: BoundedDate | None = None
    valid_until: BoundedDate | None = None
    budget_cap: Money | None = None
    budget_warning_percent: int = Field(80, ge=0, le=100)
    billing_name: str = Text(200, default="")
    billing_address: str = Text(300, default="")
    tax_number: str = Text(40, default="")
    contact_name: str = Text(100, default="")
    contact_email: str = Text(254, default="")
    contact_phone: str = Text(40, default="")


class AccountPatch(StrictSchema):
    name: str | None = Text(200, 1, default=None)
    funding_programme: str | None = Text(200, default=None)
    pi_id: Id | None = None
    valid_from: BoundedDate | None = None
    valid_until: BoundedDate | None = None
    budget_cap: Money | None = None
    budget_warning_percent: int | None = Field(None, ge=0, le=100)
    billing_name: str | None = Text(200, default=None)
    billing_address: str | None = Text(300, default=None)
    tax_number: str | None = Text(40, default=None)
    contact_name: str | None = Text(100, default=None)
    contact_email: str | None = Text(254, default=None)
    contact_phone: str | None = Text(40, default=None)
    is_active: bool | None = None


class UserRef(StrictSchema):
    user_id: Id


class NoteIn(StrictSchema):
    note: str = Text(300, default="")


class DecisionIn(StrictSchema):
    approve: bool
    note: str = Text(300, default="")


class AuthorizationOut(Schema):
    id: int
    account_id: Id
    user_id: Id
    state: str
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    note: str


class RateIn(StrictSchema):
    user_class: str = Field(..., pattern="^(internal|academic|industry)$")
    unit: str = Field(..., pattern="^(hour|sample|use)$")
    price: Money


class RateCardIn(StrictSchema):
    valid_from: BoundedDate
    rates: list[RateIn] = Field(..., min_length=1, max_length=9)
    minimum_charge: Money = Decimal("0")
    assisted_surcharge: Money = Decimal("0")
    note: str = Text(300, default="")


class RateOut(Schema):
    user_class: str
    unit: str
    price: Decimal


class RateCardOut(Schema):
    id: int
    instrument_id: Id
    valid_from: dt.date
    currency: str
    minimum_charge: Decimal
    assisted_surcharge: Decimal
    note: str
    rates: list[RateOut]

    @staticmethod
    def resolve_rates(obj) -> list:
        return list(obj.rates.all())


class FeeStandardOut(Schema):
    instrument_id: Id
    text: str
    rate_card: RateCardOut | None


class ChargeOut(Schema):
    id: int
    kind: str
    period: str
    service_start: dt.datetime
    account_id: Id
    account_number: str
    provider_id: int
    instrument_id: Id
    instrument_name: str
    user_id: int | None
    item_id: int | None
    adjusts_id: int | None
    user_class: str
    unit: str
    quantity: Decimal
    unit_price: Decimal
    surcharge: Decimal
    minimum_applied: bool
    amount: Decimal
    voucher_amount: Decimal
    currency: str
    reason: str
    invoice_id: int | None
    invoice_number: str | None

    @staticmethod
    def resolve_account_number(obj: Charge) -> str:
        return obj.account.number

    @staticmethod
    def resolve_instrument_name(obj: Charge) -> str:
        return obj.instrument.name_zh

    @staticmethod
    def resolve_invoice_number(obj: Charge) -> str | None:
        return obj.invoice.number if obj.invoice_id else None


class ChargeList(Schema):
    count: int
    total: Decimal
    items: list[ChargeOut]


class ChargeParams(Schema):
    scope: str = Field("mine", pattern="^(mine|provider|visible)$")
    period: str | None = Field(None, pattern=MONTH_PATTERN)
    account_id: Id | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)


class AdjustmentIn(StrictSchema):
    account_id: Id
    instrument_id: Id
    amount: SignedMoney
    reason: str = Text(500, 1)
    adjusts_id: Id | None = None


class ReasonIn(StrictSchema):
    reason: str = Text(500, 1)


class CostOut(Schema):
    item_id: int
    instrument_id: Id
    instrument_name: str
    service_start: dt.datetime
    kind: str
    unit: str
    quantity: int
    state: str
    estimated_amount: Decimal | None
    charge_id: int | None
    amount: Decimal | None
    voucher_amount: Decimal | None
    invoice_number: str | None


class PeriodIn(StrictSchema):
    organization_id: Id
    month: str = Field(..., pattern=MONTH_PATTERN)


class PeriodOut(Schema):
    id: int
    organization_id: Id
    month: str
    state: str
    percent: int
    progress_total: int
    progress_done: int
    charges_created: int
    invoices_issued: int
    unassigned_items: int
    error: str
    started_at: dt.datetime | None
    closed_at: dt.datetime | None


class InvoiceLineOut(Schema):
    position: int
    instrument_id: int | None
    description: str
    hours: Decimal
    samples: int
    uses: int
    charge_count: int
    amount: Decimal
    voucher_amount: Decimal


class InvoiceOut(Schema):
    id: int
    kind: str
    number: str
    issuer_id: int
    issuer_name: str
    account_id: Id
    account_number: str
    period: str
    state: str
    currency: str
    subtotal: Decimal
    voucher_amount: Decimal
    amount_due: Decimal
    amount_paid: Decimal
    credited_amount: Decimal
    outstanding: Decimal
    payer_name: str
    payer_address: str
    payer_tax_number: str
    credit_for_id: int | None
    reason: str
    issued_at: dt.datetime
    paid_at: dt.datetime | None


class InvoiceDetailOut(InvoiceOut):
    lines: list[InvoiceLineOut]

    @staticmethod
    def resolve_lines(obj: Invoice) -> list:
        return list(queries.invoice_lines(obj))


class InvoiceParams(Schema):
    period: str | None = Field(None, pattern=MONTH_PATTERN)
    state: str | None = Field(None, pattern="^(issued|paid|credited)$")
    kind: str | None = Field(None, pattern="^(invoice|credit_note)$")
    account_id: Id | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class InvoiceList(Schema):
    count: int
    items: list[InvoiceOut]


class CreditNoteIn(StrictSchema):
    reason: str = Text(500, 1)
    amount: PositiveMoney | None = None


class TransferIn(StrictSchema):
    amount: PositiveMoney
    reference: str = Text(200, 1)


class PaymentOut(Schema):
    id: int
    invoice_id: int
    method: str
    amount: Decimal
    currency: str
    state: str
    reference: str
    stripe_payment_intent: str | None
    created_at: dt.datetime
    succeeded_at: dt.datetime | None


class OnlinePaymentOut(PaymentOut):
    client_secret: str
    publishable_key: str


class ExportParams(Schema):
    period: str = Field(..., pattern=MONTH_PATTERN)
    format: str = Field("csv", pattern="^(csv|xlsx)$")
    organization_id: Id | None = None
    lang: str = Field("zh", pattern="^(zh|en)$", description="The headers' language: zh (default) or en")


class VoucherIn(StrictSchema):
    company_id: Id
    amount: PositiveMoney
    share_percent: PositivePercent
    yearly_cap: PositiveMoney | None = None
    valid_from: BoundedDate
    valid_until: BoundedDate
    eligible_provider_ids: list[Id] = Field(default_factory=list, max_length=200)
    number: str | None = Text(40, 1, default=None)


class VoucherOut(Schema):
    id: int
    number: str
    company_id: Id
    company_name: str
    amount: Decimal
    share_percent: Decimal
    yearly_cap: Decimal | None
    valid_from: dt.date
    valid_until: dt.date
    balance: Decimal
    state: str
    currency: str
    eligible_provider_ids: list[int]

    @staticmethod
    def resolve_company_name(obj: Voucher) -> str:
        return obj.company.name_zh

    @staticmethod
    def resolve_eligible_provider_ids(obj: Voucher) -> list[int]:
        return sorted(o.pk for o in obj.eligible_providers.all())


class VoucherEntryOut(Schema):
    id: int
    kind: str
    amount: Decimal
    balance_after: Decimal
    year: int
    created_at: dt.datetime
    charge_id: int | None
    service_record_id: int | None
    instrument_name: str | None
    provider_name: str | None
    service_start: dt.datetime | None
    charge_amount: Decimal | None
    invoice_number: str | None


class StatementOut(Schema):
    voucher: VoucherOut
    entries: list[VoucherEntryOut]
    redeemed: Decimal


class AccountStatementOut(Schema):
    account: AccountDetailOut
    year: int
    invoices: list[InvoiceOut]
    charged: Decimal
    invoiced: Decimal
    paid: Decimal
    outstanding: Decimal


class SubsidyLineOut(Schema):
    organization_id: Id
    organization_name: str
    fees: Decimal
    records: int
    percent: Decimal
    computed: Decimal
    cap: Decimal
    subsidy: Decimal
    capped: bool
    charge_ids: list[int]


class SubsidyOut(Schema):
    year: int
    providers: list[SubsidyLineOut]
    enterprises: list[SubsidyLineOut]
    excluded: dict[str, int]


# --- helpers ----------------------------------------------------------------------------------


def _account(user, account_id: int) -> BillingAccount:
    account = queries.visible_accounts(user).filter(pk=account_id).first()
    if account is None:
        raise NotFound("not_found", "No such account.")
    return account


def _invoice(user, invoice_id: int) -> Invoice:
    invoice = queries.visible_invoices(user).filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("not_found", "No such invoice.")
    return invoice


def _voucher(user, voucher_id: int) -> Voucher:
    voucher = queries.visible_vouchers(user).filter(pk=voucher_id).first()
    if voucher is None:
        raise NotFound("not_found", "No such voucher.")
    return voucher


def _instrument(user, instrument_id: int):
    instrument = catalog_queries.visible_instruments(user).filter(pk=instrument_id).first()
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    return instrument


def _user(user_id: int | None) -> User | None:
    if user_id is None:
        return None
    found = User.objects.filter(pk=user_id, is_active=True).first()
    if found is None:
        raise Invalid("unknown_user", "No such user.")
    return found


def _with_budget(account: BillingAccount) -> BillingAccount:
    account.budget = queries.budget_status(account)
    return account


# --- accounts ---------------------------------------------------------------------------------


@router.get("/accounts", response=list[AccountOut], summary="Billing accounts I may see")
def list_accounts(request, kind: str | None = Query(None, pattern="^(cost_centre|project|external)$"),
                  limit: int = Limit, offset: int = Offset):
    rows = queries.visible_accounts(request.auth)
    rows = rows.filter(kind=kind) if kind else rows
    return list(rows[offset: offset + limit])


@router.get("/accounts/chargeable", response=list[AccountOut], summary="Accounts I may charge a booking to today")
def chargeable_accounts(request):
    return list(queries.chargeable_accounts(request.auth))


@router.post("/accounts", response={201: AccountDetailOut}, summary="Create an account (finance)")
def create_account(request, payload: AccountIn):
    organization = Organization.objects.filter(pk=payload.organization_id).first()
    if organization is None:
        raise Invalid("unknown_organization", "No such organization.")
    lab = organization.labs.filter(pk=payload.lab_id).first() if payload.lab_id else None
    data = payload.dict(exclude={"kind", "organization_id", "lab_id", "pi_id", "number", "name"})
    account = services.create_account(actor=request.auth, kind=payload.kind, organization=organization,
                                      number=payload.number, name=payload.name, lab=lab, pi=_user(payload.pi_id),
                                      **data)
    return Status(201, _with_budget(account))


@router.get("/accounts/{account_id}", response=AccountDetailOut, summary="One account, with its budget")
def get_account(request, account_id: Id):
    return _with_budget(_account(request.auth, account_id))


@router.patch("/accounts/{account_id}", response=AccountDetailOut, summary="Change an account (finance)")
def update_account(request, account_id: Id, payload: AccountPatch):
    _account(request.auth, account_id)
    fields = payload.dict(exclude_unset=True)
    if "pi_id" in fields:
        fields["pi"] = _user(fields.pop("pi_id"))
    return _with_budget(services.update_account(actor=request.auth, account_id=account_id, **fields))


@router.get("/accounts/{account_id}/statement", response=AccountStatementOut, summary="An account's year")
def account_statement(request, account_id: Id, year: int = Query(..., ge=2000, le=2100)):
    account = _with_budget(_account(request.auth, account_id))
    rows = list(queries.visible_invoices(request.auth).filter(account=account, issued_at__year=year)
                .order_by("issued_at", "id"))
    invoices = [i for i in rows if i.kind == Invoice.Kind.INVOICE]
    credits = sum((i.amount_due for i in rows if i.kind == Invoice.Kind.CREDIT_NOTE), Decimal("0.00"))
    charged = sum((c for c in queries.charges().filter(account=account, period__startswith=f"{year}-")
                   .values_list("amount", flat=True)), Decimal("0.00"))
    return {"account": account, "year": year, "invoices": rows, "charged": charged,
            "invoiced": sum((i.amount_due for i in invoices), Decimal("0.00")) - credits,
            "paid": sum((i.amount_paid for i in invoices), Decimal("0.00")),
            "outstanding": sum((i.outstanding for i in invoices), Decimal("0.00"))}


@router.post("/accounts/{account_id}/authorizations", response={201: AuthorizationOut},
             summary="Let a user charge this account (its PI or finance)")
def authorize_user(request, account_id: Id, payload: UserRef):
    _account(request.auth, account_id)
    return Status(201, services.authorize_user(actor=request.auth, account_id=account_id, user=_user(payload.user_id)))


@router.delete("/accounts/{account_id}/authorizations/{user_id}", response={204: None},
               summary="Stop a user charging this account")
def revoke_authorization(request, account_id: Id, user_id: Id):
    services.revoke_account_access(actor=request.auth, account_id=account_id, user_id=user_id)
    return Status(204, None)


@router.post("/accounts/{account_id}/access-requests", response={201: AuthorizationOut},
             summary="Ask a project's PI to let me charge it")
def request_access(request, account_id: Id, payload: NoteIn | None = None):
    return Status(201, services.request_account_access(user=request.auth, account_id=account_id,
                                                       note=payload.note if payload else ""))


@router.get("/access-requests", response=list[AuthorizationOut], summary="Requests awaiting me as PI")
def access_requests(request):
    return list(queries.pending_authorizations_for_pi(request.auth))


@router.post("/access-requests/{authorization_id}/decide", response=AuthorizationOut, summary="Approve or decline")
def decide_access(request, authorization_id: Id, payload: DecisionIn):
    return services.decide_account_access(actor=request.auth, authorization_id=authorization_id,
                                          approve=payload.approve, note=payload.note)


# --- rate cards -------------------------------------------------------------------------------


@router.get("/instruments/{instrument_id}/rate-cards", response=list[RateCardOut], auth=PUBLIC_AUTH,
            summary="An instrument's rate cards, newest first")
def list_rate_cards(request, instrument_id: Id):
    return list(queries.rate_cards(_instrument(request.auth, instrument_id)))


@router.get("/instruments/{instrument_id}/fee-standard", response=FeeStandardOut, auth=PUBLIC_AUTH,
            summary="The published fee standard (from today's rate card)")
def fee_standard(request, instrument_id: Id):
    instrument = _instrument(request.auth, instrument_id)
    return {"instrument_id": instrument.pk, "text": queries.fee_standard(instrument),
            "rate_card": queries.current_rate_card(instrument)}


@router.post("/instruments/{instrument_id}/rate-cards", response={201: RateCardOut},
             summary="A new rate card (lab managers, finance)")
def create_rate_card(request, instrument_id: Id, payload: RateCardIn):
    _instrument(request.auth, instrument_id)
    card = services.create_rate_card(actor=request.auth, instrument_id=instrument_id, valid_from=payload.valid_from,
                                     rates=[rate.dict() for rate in payload.rates],
                                     minimum_charge=payload.minimum_charge,
                                     assisted_surcharge=payload.assisted_surcharge, note=payload.note)
    return Status(201, card)


@router.delete("/rate-cards/{card_id}", response={204: None}, summary="Delete a card no charge used")
def delete_rate_card(request, card_id: Id):
    services.delete_rate_card(actor=request.auth, card_id=card_id)
    return Status(204, None)


# --- charges ----------------------------------------------------------------------------------


@router.get("/charges", response=ChargeList, summary="Charges: mine, my organization's as provider, or all I see")
def list_charges(request, params: Query[ChargeParams]):
    user = request.auth
    rows = {"mine": queries.my_charges, "provider": queries.provider_charges,
            "visible": queries.visible_charges}[params.scope](user)
    if params.period:
        rows = rows.filter(period=params.period)
    if params.account_id:
        rows = rows.filter(account_id=params.account_id)
    total = sum((a for a in rows.values_list("amount", flat=True)), Decimal("0.00"))
    rows = rows.order_by("-service_start", "-id")
    return {"count": rows.count(), "total": total, "items": list(rows[params.offset: params.offset + params.limit])}


@router.get("/my-costs", response=list[CostOut], summary="What my used bookings cost (estimates until charged)")
def my_costs(request, limit: int = Query(100, ge=1, le=500)):
    return queries.my_costs(request.auth, limit=limit)


@router.post("/charges/adjustments", response={201: ChargeOut}, summary="A manual adjustment with a reason (finance)")
def adjust(request, payload: AdjustmentIn):
    return Status(201, services.adjust_charges(actor=request.auth, account_id=payload.account_id,
                                               instrument_id=payload.instrument_id, amount=payload.amount,
                                               reason=payload.reason, adjusts_id=payload.adjusts_id))


@router.post("/charges/{charge_id}/waive", response={201: ChargeOut}, summary="Waive a charge, with a reason")
def waive(request, charge_id: Id, payload: ReasonIn):
    return Status(201, services.waive_charge(actor=request.auth, charge_id=charge_id, reason=payload.reason))


# --- periods ----------------------------------------------------------------------------------


@router.get("/periods", response=list[PeriodOut], summary="Billing periods of my organizations")
def list_periods(request):
    if not queries.is_finance(request.auth):
        raise Forbidden("forbidden", "For finance officers.")
    return list(queries.periods_for(request.auth)[:120])


@router.post("/periods", response={202: PeriodOut}, summary="Close a month (runs as a task; poll the period)")
def close_period(request, payload: PeriodIn):
    return Status(202, closing.request_close(actor=request.auth, organization_id=payload.organization_id,
                                             month=payload.month))


@router.get("/periods/{period_id}", response=PeriodOut, summary="A period and its closing progress")
def get_period(request, period_id: Id):
    period = queries.periods_for(request.auth).filter(pk=period_id).first()
    if period is None:
        raise NotFound("not_found", "No such period.")
    return period


# --- invoices ---------------------------------------------------------------------------------


@router.get("/invoices", response=InvoiceList, summary="Invoices and credit notes I may see")
def list_invoices(request, params: Query[InvoiceParams]):
    rows = queries.visible_invoices(request.auth)
    for name in ("period", "state", "kind", "account_id"):
        if getattr(params, name):
            rows = rows.filter(**{name: getattr(params, name)})
    return {"count": rows.count(), "items": list(rows[params.offset: params.offset + params.limit])}


@router.get("/invoices/{invoice_id}", response=InvoiceDetailOut, summary="One invoice with its lines")
def get_invoice(request, invoice_id: Id):
    return _invoice(request.auth, invoice_id)


@router.get("/invoices/{invoice_id}/pdf", summary="The invoice as PDF", throttle=export_throttle())
def invoice_pdf(request, invoice_id: Id):
    invoice = _invoice(request.auth, invoice_id)
    response = HttpResponse(pdf.render(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
    return response


@router.get("/invoices/{invoice_id}/charges", response=list[ChargeOut], summary="The charges behind an invoice")
def invoice_charges(request, invoice_id: Id, limit: int = Limit, offset: int = Offset):
    invoice = _invoice(request.auth, invoice_id)
    return list(queries.charges().filter(invoice=invoice).order_by("service_start", "id")[offset: offset + limit])


@router.post("/invoices/{invoice_id}/credit-notes", response={201: InvoiceDetailOut},
             summary="Correct an issued invoice (the issuer's finance); refunds online payments")
def credit_note(request, invoice_id: Id, payload: CreditNoteIn):
    _invoice(request.auth, invoice_id)
    return Status(201, closing.issue_credit_note(actor=request.auth, invoice_id=invoice_id, reason=payload.reason,
                                                 amount=payload.amount))


@router.post("/invoices/{invoice_id}/transfers", response={201: PaymentOut},
             summary="Record a bank transfer received (the issuer's finance)")
def record_transfer(request, invoice_id: Id, payload: TransferIn):
    _invoice(request.auth, invoice_id)
    return Status(201, closing.record_transfer(actor=request.auth, invoice_id=invoice_id, amount=payload.amount,
                                               reference=payload.reference))


@router.post("/invoices/{invoice_id}/online-payment", response={201: OnlinePaymentOut},
             summary="Start paying online: a Stripe PaymentIntent for what is due")
def start_online_payment(request, invoice_id: Id):
    payment = payments.start_online_payment(user=request.auth, invoice_id=invoice_id)
    payment.publishable_key = gateway.publishable_key()
    return Status(201, payment)


@router.get("/invoices/{invoice_id}/payments", response=list[PaymentOut], summary="Payments of an invoice")
def invoice_payments(request, invoice_id: Id):
    return list(queries.payments_of(_invoice(request.auth, invoice_id)))


@router.get("/payments", response=list[PaymentOut], summary="Payments on invoices I may see")
def list_payments(request, limit: int = Query(100, ge=1, le=500)):
    return list(queries.visible_payments(request.auth).order_by("-created_at", "-id")[:limit])


# --- exports ----------------------------------------------------------------------------------


def export_response(user, *, period: str, format: str, organization_id: int | None = None,
                    lang: str = "zh") -> StreamingHttpResponse:
    if not queries.is_finance(user):
        raise Forbidden("forbidden", "Exports are for finance officers.")
    charges = queries.provider_charges(user).filter(period=period)
    if organization_id is not None:
        if not queries.can_manage_org_billing(user, organization_id):
            raise NotFound("not_found", "No such organization.")
        charges = charges.filter(provider_id=organization_id)
    rows = exports.export_queryset(charges)
    if format == "xlsx":
        response = StreamingHttpResponse(
            exports.xlsx_stream(rows, title=period, lang=lang),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    else:
        response = StreamingHttpResponse(exports.csv_stream(rows, lang=lang), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="charges-{period}.{format}"'
    response["Cache-Control"] = "no-store"
    return response


@router.get("/export", summary="One row per charge of a period, as CSV (UTF-8 with BOM) or XLSX, streamed",
            throttle=export_throttle())
def export(request, params: Query[ExportParams]):
    return export_response(request.auth, period=params.period, format=params.format,
                           organization_id=params.organization_id, lang=params.lang)


# --- vouchers ---------------------------------------------------------------------------------


@router.get("/vouchers", response=list[VoucherOut], summary="Innovation vouchers I may see")
def list_vouchers(request, limit: int = Limit, offset: int = Offset):
    return list(queries.visible_vouchers(request.auth)[offset: offset + limit])


@router.post("/vouchers", response={201: VoucherOut}, summary="Issue a voucher to a company (the science bureau)")
def issue_voucher(request, payload: VoucherIn):
    if not people.is_platform_admin(request.auth):
        raise Forbidden("forbidden", "Only the science bureau issues innovation vouchers.")
    company = Organization.objects.filter(pk=payload.company_id).first()
    if company is None:
        raise Invalid("unknown_organization", "No such company.")
    providers = list(Organization.objects.filter(pk__in=payload.eligible_provider_ids))
    return Status(201, services.issue_voucher(
        actor=request.auth, company=company, amount=payload.amount, share_percent=payload.share_percent,
        yearly_cap=payload.yearly_cap, valid_from=payload.valid_from, valid_until=payload.valid_until,
        eligible_providers=providers, number=payload.number))


@router.get("/vouchers/{voucher_id}", response=VoucherOut, summary="One voucher")
def get_voucher(request, voucher_id: Id):
    return _voucher(request.auth, voucher_id)


@router.get("/vouchers/{voucher_id}/statement", response=StatementOut,
            summary="The redemption statement: ledger, service records, invoices")
def voucher_statement(request, voucher_id: Id):
    voucher = _voucher(request.auth, voucher_id)
    entries = list(queries.voucher_statement(voucher, request.auth))
    rows = [statement_row(entry) for entry in entries]
    redeemed = -sum((e.amount for e in entries if e.kind != "issue"), Decimal("0.00"))
    return {"voucher": voucher, "entries": rows, "redeemed": redeemed}


def statement_row(entry) -> dict:
    charge = entry.charge
    record = getattr(charge.item, "service_record", None) if charge and charge.item_id else None
    return {"id": entry.pk, "kind": entry.kind, "amount": entry.amount, "balance_after": entry.balance_after,
            "year": entry.year, "created_at": entry.created_at, "charge_id": entry.charge_id,
            "service_record_id": record.pk if record else None,
            "instrument_name": charge.instrument.name_zh if charge else None,
            "provider_name": charge.provider.name_zh if charge else None,
            "service_start": charge.service_start if charge else None,
            "charge_amount": charge.amount if charge else None,
            "invoice_number": entry.invoice.number if entry.invoice_id else None}


@router.post("/vouchers/{voucher_id}/revoke", response=VoucherOut, summary="Revoke a voucher (the science bureau)")
def revoke_voucher(request, voucher_id: Id, payload: ReasonIn):
    _voucher(request.auth, voucher_id)
    return services.revoke_voucher(actor=request.auth, voucher_id=voucher_id, reason=payload.reason)


# --- post-subsidies ---------------------------------------------------------------------------


@router.get("/subsidies", response=SubsidyOut, summary="Post-subsidies of a year (the bureau; finance: their own)")
def subsidy_report(request, year: int = Query(..., ge=2000, le=2100)):
    user = request.auth
    if not queries.is_finance(user):
        raise Forbidden("forbidden", "For the science bureau and finance officers.")
    report = subsidies.report(year)
    if not people.is_platform_admin(user):
        mine = queries.finance_org_ids(user)
        report["providers"] = [line for line in report["providers"] if line.organization.pk in mine]
        report["enterprises"] = [line for line in report["enterprises"] if line.organization.pk in mine]
    for key in ("providers", "enterprises"):
        report[key] = [dict(vars(line), organization_id=line.organization.pk,
                            organization_name=line.organization.name_zh) for line in report[key]]
    return report


# --- Stripe -----------------------------------------------------------------------------------


@router.post("/stripe/webhook", auth=None, summary="Stripe's events (signed; each recorded once)")
def stripe_webhook(request):
    if not gateway.enabled():
        raise NotFound("stripe_off", "Online payment is not configured.")
    outcome = payments.handle_webhook(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    return {"received": True, "outcome": outcome}
