"""Closing a period: charges → one invoice per account (per issuing provider), vouchers, numbers.

``request_close`` marks the period closing and enqueues the task after commit; ``run_close`` does
the work (the task, and ``manage.py close_period``, call it). Every step can run again: items
already charged are skipped, an account already invoiced for the period gets no second invoice
(a unique key says so), a closed period is left alone. So re-running a close changes nothing, and
a close that died half way finishes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import OrderedDict
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Organization
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from usage.models import ServiceRecord

from .. import queries
from ..extensions import period_closed
from ..models import (
    BillingAccount,
    BillingPeriod,
    Charge,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    Payment,
    Refund,
    Voucher,
    VoucherEntry,
)
from ..money import ZERO, money, share_of
from ..pricing import local_day
from .charges import charge_items, service_record_fields
from .common import checked_amount, checked_reason

logger = logging.getLogger(__name__)
MONTH = re.compile(r"^20\d{2}-(0[1-9]|1[0-2])$")
SERIES = {Invoice.Kind.INVOICE: "INV", Invoice.Kind.CREDIT_NOTE: "CN"}
# A running close beats after every account (seconds apart); one silent this long has lost its worker.
STUCK_AFTER = dt.timedelta(minutes=5)


def checked_month(month: str) -> str:
    if not MONTH.match(month or ""):
        raise Invalid("invalid_period", "A period is a month written YYYY-MM.")
    return month


# --- starting and running a close ---------------------------------------------------------------


@transaction.atomic
def request_close(*, actor, organization_id: int, month: str, now: dt.datetime | None = None) -> BillingPeriod:
    """Finance asks to close a month; the work runs as a task after this commits."""
    now = now or timezone.now()
    checked_month(month)
    if actor is not None and not queries.can_manage_org_billing(actor, organization_id):
        raise Forbidden("forbidden", "Only the organization's finance officers close its periods.")
    if not Organization.objects.filter(pk=organization_id).exists():
        raise NotFound("not_found", "No such organization.")
    if month >= queries.month_of(timezone.localtime(now).date()):
        raise Conflict("period_not_over", "A month can be closed once it is over.")
    period = _period_for_update(organization_id, month)
    stuck = period.state == BillingPeriod.State.CLOSING and is_stuck(period, now)  # every step can run again
    if period.state == BillingPeriod.State.CLOSED or (period.state == BillingPeriod.State.CLOSING and not stuck):
        return period
    period.state, period.started_by, period.started_at, period.error = BillingPeriod.State.CLOSING, actor, now, ""
    period.progress_done = period.progress_total = 0
    period.save()
    record(actor=actor, action="billing.period.close_requested", target=period, after={"month": month})
    from ..tasks import close_period_task

    transaction.on_commit(lambda: close_period_task.delay(period.pk))
    return period


def is_stuck(period: BillingPeriod, now: dt.datetime | None = None) -> bool:
    """A close in progress whose heartbeat (or start, before the first beat) is older than STUCK_AFTER."""
    last = period.heartbeat_at or period.started_at
    return bool(last) and (now or timezone.now()) - last > STUCK_AFTER


def _period_for_update(organization_id: int, month: str) -> BillingPeriod:
    BillingPeriod.objects.get_or_create(organization_id=organization_id, month=month)
    return BillingPeriod.objects.select_for_update().get(organization_id=organization_id, month=month)


def run_close(period_id: int, *, now: dt.datetime | None = None) -> BillingPeriod:
    """Charge the month's items, then issue one invoice per account. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        period = BillingPeriod.objects.select_for_update().get(pk=period_id)
        if period.state == BillingPeriod.State.CLOSED:
            return period
        # Closing shuts the month for new charges at once (they go to the next month).
        BillingPeriod.objects.filter(pk=period.pk).update(state=BillingPeriod.State.CLOSING, error="")
    try:
        return _close(period, now)
    except Exception as error:
        logger.exception("closing period %s failed", period_id)
        BillingPeriod.objects.filter(pk=period_id).update(state=BillingPeriod.State.FAILED, error=str(error)[:500])
        raise


def _close(period: BillingPeriod, now: dt.datetime) -> BillingPeriod:
    month, organization_id = period.month, period.organization_id
    _start, end = queries.month_bounds(month)
    run = charge_items(provider_id=organization_id, before=end, month=month, now=now)
    account_ids = list(Charge.objects.filter(provider_id=organization_id, period=month, invoice__isnull=True)
                       .order_by("account_id").values_list("account_id", flat=True).distinct())
    BillingPeriod.objects.filter(pk=period.pk).update(progress_total=len(account_ids), progress_done=0,
                                                      charges_created=F("charges_created") + run.created,
                                                      unassigned_items=run.unassigned + run.unpriced,
                                                      heartbeat_at=timezone.now())
    for account_id in account_ids:
        issue_invoice(organization_id=organization_id, account_id=account_id, month=month, now=now)
        BillingPeriod.objects.filter(pk=period.pk).update(progress_done=F("progress_done") + 1,
                                                          heartbeat_at=timezone.now())
    with transaction.atomic():
        # A charge that arrived while its account was being invoiced goes to the next month.
        late = Charge.objects.filter(provider_id=organization_id, period=month, invoice__isnull=True)
        moved = late.update(period=queries.next_month(month))
        # Counted from the invoices and their charges, not added up run by run: a close interrupted
        # (its charges made by the first run, its invoices by two) and resumed says what exists.
        invoices = Invoice.objects.filter(issuer_id=organization_id, period=month, kind=Invoice.Kind.INVOICE)
        charged = Charge.objects.filter(invoice__in=invoices, kind=Charge.Kind.USAGE).count()
        BillingPeriod.objects.filter(pk=period.pk).update(
            state=BillingPeriod.State.CLOSED, closed_at=now, invoices_issued=invoices.count(),
            charges_created=charged, heartbeat_at=timezone.now())
        period.refresh_from_db()
        record(actor=period.started_by, action="billing.period.closed", target=period,
               after={"month": month, "charges_created": period.charges_created,
                      "invoices_issued": period.invoices_issued,
                      "unassigned_items": run.unassigned, "unpriced_items": run.unpriced, "moved_to_next": moved})
        transaction.on_commit(lambda: period_closed.collect(period))  # e.g. the dashboard's income, at once
    return period


def organizations_to_close(month: str) -> list[int]:
    """Providers with something to bill up to the end of ``month``: open items or uninvoiced charges."""
    from usage.models import BillableItem

    _start, end = queries.month_bounds(month)
    with_items = BillableItem.objects.filter(state=BillableItem.State.OPEN, service_start__lt=end,
                                             charge__isnull=True).values_list("instrument__organization_id", flat=True)
    with_charges = Charge.objects.filter(period=month, invoice__isnull=True).values_list("provider_id", flat=True)
    return sorted(set(with_items) | set(with_charges))


def close_period(*, actor, month: str, organization_ids: list[int] | None = None,
                 now: dt.datetime | None = None) -> list[BillingPeriod]:
    """Close ``month`` for the given providers (all with something to bill by default), synchronously."""
    checked_month(month)
    now = now or timezone.now()
    if organization_ids is None:
        organization_ids = organizations_to_close(month)
    periods = []
    for organization_id in organization_ids:
        with transaction.atomic():
            period = _period_for_update(organization_id, month)
            if period.state != BillingPeriod.State.CLOSED and period.started_at is None:
                period.started_at, period.started_by = now, actor
                period.save(update_fields=["started_at", "started_by"])
        periods.append(run_close(period.pk, now=now))
    return periods


# --- invoices -----------------------------------------------------------------------------------


def _code(organization: Organization) -> str:
    text = re.sub(r"[^A-Za-z0-9]", "", organization.short_name or "").upper()
    return text[:12] or f"ORG{organization.pk}"


def _next_number(organization: Organization, year: int, kind: str) -> tuple[int, str]:
    """Gapless: the counter row is locked until the invoice's transaction commits; a rollback
    gives the number back."""
    series = SERIES[kind]
    InvoiceSequence.objects.get_or_create(organization=organization, year=year, series=series)
    counter = InvoiceSequence.objects.select_for_update().get(organization=organization, year=year, series=series)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last, f"{series}-{_code(organization)}-{year}-{counter.last:06d}"


def _payer_details(account: BillingAccount) -> dict:
    organization = account.organization
    return {
        "payer_name": account.payer_name, "payer_address": account.billing_address or organization.address,
        "payer_tax_number": account.tax_number or organization.credit_code, "payer_contact": account.contact_name,
        "payer_email": account.contact_email or organization.contact_email, "account_number": account.number,
        "account_name": account.name, "funding_programme": account.funding_programme,
    }


def _issuer_details(organization: Organization) -> dict:
    return {"issuer_name": organization.name_zh, "issuer_address": organization.address,
            "issuer_tax_number": organization.credit_code}


def _lines(charges: list[Charge]) -> list[InvoiceLine]:
    """One line per instrument, in the order of first use; amounts are sums of rounded charges."""
    groups: OrderedDict[int, list[Charge]] = OrderedDict()
    for charge in charges:
        groups.setdefault(charge.instrument_id, []).append(charge)
    lines = []
    for position, group in enumerate(groups.values(), start=1):
        instrument = group[0].instrument
        usage = [c for c in group if c.kind == Charge.Kind.USAGE]
        lines.append(InvoiceLine(
            position=position, instrument=instrument,
            description=f"{instrument.name_zh} ({instrument.asset_number})"[:300],
            hours=money(sum((Decimal(c.minutes) for c in usage if c.unit == "hour"), ZERO) / 60),
            samples=int(sum(c.quantity for c in usage if c.unit == "sample")),
            uses=int(sum(c.quantity for c in usage if c.unit == "use")),
            charge_count=len(group), amount=sum((c.amount for c in group), ZERO),
            voucher_amount=sum((c.voucher_amount for c in group), ZERO)))
    return lines


def issue_invoice(*, organization_id: int, account_id: int, month: str, now: dt.datetime) -> Invoice | None:
    """The account's invoice for the month from this provider: lines, vouchers, number, in one transaction."""
    with transaction.atomic():
        charges = list(Charge.objects.select_for_update(of=("self",)).select_related("instrument").filter(
            provider_id=organization_id, account_id=account_id, period=month, invoice__isnull=True)
            .order_by("service_start", "id"))
        if not charges:
            return None
        if Invoice.objects.filter(issuer_id=organization_id, account_id=account_id, period=month,
                                  kind=Invoice.Kind.INVOICE).exists():
            Charge.objects.filter(pk__in=[c.pk for c in charges]).update(period=queries.next_month(month))
            return None
        account = BillingAccount.objects.select_related("organization").get(pk=account_id)
        issuer = Organization.objects.get(pk=organization_id)
        issued_on = timezone.localtime(now).date()
        sequence, number = _next_number(issuer, issued_on.year, Invoice.Kind.INVOICE)
        subtotal = sum((c.amount for c in charges), ZERO)
        invoice = Invoice(kind=Invoice.Kind.INVOICE, issuer=issuer, account=account, period=month,
                          year=issued_on.year, sequence=sequence, number=number, currency=account.currency,
                          subtotal=subtotal, voucher_amount=ZERO, amount_due=subtotal, issued_at=now,
                          **_issuer_details(issuer), **_payer_details(account))
        entries = _voucher_shares(account, charges, provider_id=organization_id, month=month, now=now)
        invoice.voucher_amount = sum((-entry.amount for entry in entries), ZERO)
        invoice.amount_due = subtotal - invoice.voucher_amount
        invoice.save()
        for entry in entries:
            entry.invoice = invoice
        VoucherEntry.objects.bulk_create(entries)
        lines = _lines(charges)
        for line in lines:
            line.invoice = invoice
        InvoiceLine.objects.bulk_create(lines)
        ids = [c.pk for c in charges]
        for start in range(0, len(ids), 1000):
            Charge.objects.filter(pk__in=ids[start:start + 1000]).update(invoice=invoice)
        with_voucher = [c for c in charges if c.voucher_amount]
        Charge.objects.bulk_update(with_voucher, ["voucher_amount"], batch_size=500)
        _fill_service_records(charges, account)
        record(actor=None, action="billing.invoice.issued", target=invoice,
               after={"number": number, "account_id": account.pk, "period": month, "subtotal": subtotal,
                      "voucher_amount": invoice.voucher_amount, "amount_due": invoice.amount_due,
                      "charges": len(charges)})
    return invoice


def _fill_service_records(charges: list[Charge], account: BillingAccount) -> None:
    """Records reconciliation wrote after the charge was made still get their fee and project."""
    by_item = {c.item_id: c for c in charges if c.item_id}
    records = list(ServiceRecord.objects.filter(item_id__in=list(by_item), fee__isnull=True))
    for service_record in records:
        service_record.fee = by_item[service_record.item_id].amount
        for name, value in service_record_fields(account).items():
            setattr(service_record, name, value)
    ServiceRecord.objects.bulk_update(records, ["fee", "project", "funding_programme"])


# --- vouchers at invoicing ----------------------------------------------------------------------


def _waived_ids(charges: list[Charge]) -> set[int]:
    return set(Charge.objects.filter(adjusts_id__in=[c.pk for c in charges], kind=Charge.Kind.WAIVER)
               .values_list("adjusts_id", flat=True))


def _vouchers_for(company, provider_id: int, month: str) -> list[Voucher]:
    """The company's active vouchers with a balance, valid on some day of the month and eligible at this
    provider, locked, earliest-expiring first."""
    first_day, next_first = (dt.date.fromisoformat(f"{m}-01") for m in (month, queries.next_month(month)))
    return [v for v in Voucher.objects.select_for_update().filter(
        company=company, state=Voucher.State.ACTIVE, valid_from__lt=next_first, valid_until__gte=first_day,
        balance__gt=0).prefetch_related("eligible_providers").order_by("valid_until", "id")
        if not v.eligible_providers.all() or any(o.pk == provider_id for o in v.eligible_providers.all())]


class _VoucherBook:
    """The vouchers of one company for one invoice, as they pay charge after charge: the balances and
    the company's yearly use move as each share is taken."""

    def __init__(self, vouchers: list[Voucher], *, company_id: int, year: int, now: dt.datetime):
        self.vouchers, self.year, self.now = vouchers, year, now
        self.used = queries.voucher_used_in_year(company_id, year)
        self.before = {v.pk: v.balance for v in vouchers}

    def pay(self, charge: Charge) -> VoucherEntry | None:
        """The first voucher valid on the charge's day of use pays its share, within its balance and the
        yearly cap. Sets ``charge.voucher_amount``; returns the unsaved ledger row, or None."""
        day = local_day(charge.service_start, charge.instrument.zone)
        for voucher in self.vouchers:
            if not voucher.is_valid_on(day):
                continue
            headroom = voucher.balance
            if voucher.yearly_cap is not None:
                headroom = min(headroom, voucher.yearly_cap - self.used)
            pay = min(share_of(charge.amount, voucher.share_percent), headroom)
            if pay <= 0:
                continue
            voucher.balance -= pay
            self.used += pay
            charge.voucher_amount = pay
            return VoucherEntry(voucher=voucher, kind=VoucherEntry.Kind.REDEEM, amount=-pay,
                                balance_after=voucher.balance, charge=charge, year=self.year, created_at=self.now)
        return None

    def save(self) -> None:
        changed = [v for v in self.vouchers if v.balance != self.before[v.pk]]
        Voucher.objects.bulk_update(changed, ["balance"])
        for voucher in changed:
            before = self.before[voucher.pk]
            record(actor=None, action="billing.voucher.redeemed", target=voucher, before={"balance": before},
                   after={"balance": voucher.balance, "redeemed": before - voucher.balance, "year": self.year})


def _voucher_shares(account: BillingAccount, charges: list[Charge], *, provider_id: int, month: str,
                    now: dt.datetime) -> list[VoucherEntry]:
    """The company's vouchers pay their share of each eligible usage charge, earliest-expiring
    voucher first, never more than a voucher's balance or the company's yearly cap (of the month's
    year). A voucher pays for use on a day it is valid (the day of use in the instrument's zone), not
    on the day the month happens to be closed: December's use, closed in January, is paid by the
    voucher that was valid in December. Sets ``charge.voucher_amount``; returns unsaved ledger rows;
    moves the vouchers' balances."""
    company = account.organization
    vouchers = _vouchers_for(company, provider_id, month) if company.kind == Organization.Kind.COMPANY else []
    if not vouchers:
        return []
    skip = _waived_ids(charges) | set(VoucherEntry.objects.filter(
        charge_id__in=[c.pk for c in charges], kind=VoucherEntry.Kind.REDEEM).values_list("charge_id", flat=True))
    book = _VoucherBook(vouchers, company_id=company.pk, year=int(month[:4]), now=now)
    entries = [book.pay(charge) for charge in charges
               if charge.kind == Charge.Kind.USAGE and charge.amount > 0 and charge.pk not in skip]
    book.save()
    return [entry for entry in entries if entry is not None]


# --- credit notes -------------------------------------------------------------------------------


@transaction.atomic
def issue_credit_note(*, actor, invoice_id: int, reason: str, amount=None,
                      now: dt.datetime | None = None) -> Invoice:
    """Correct an issued invoice. Without an amount the whole invoice is credited: its voucher
    redemptions go back to the vouchers. Money paid online is refunded (after commit)."""
    now = now or timezone.now()
    invoice = Invoice.objects.select_for_update().select_related("issuer", "account", "account__organization") \
        .filter(pk=invoice_id, kind=Invoice.Kind.INVOICE).first()
    if invoice is None or not queries.visible_invoices(actor).filter(pk=invoice_id).exists():
        raise NotFound("not_found", "No such invoice.")
    if not queries.can_manage_org_billing(actor, invoice.issuer_id):
        raise Forbidden("forbidden", "Only the issuer's finance officers issue credit notes.")
    reason = checked_reason(reason)
    creditable = invoice.amount_due - invoice.credited_amount
    if invoice.state == Invoice.State.CREDITED or creditable <= 0:
        raise Conflict("already_credited", "This invoice is already credited in full.")
    full = amount is None or checked_amount(amount) == creditable
    credit = creditable if full else checked_amount(amount)
    if credit > creditable:
        raise Invalid("invalid_amount", f"At most {creditable} can be credited.")
    issued_on = timezone.localtime(now).date()
    sequence, number = _next_number(invoice.issuer, issued_on.year, Invoice.Kind.CREDIT_NOTE)
    whole = full and invoice.credited_amount == 0
    subtotal, voucher = (invoice.subtotal, invoice.voucher_amount) if whole else (credit, ZERO)
    note = Invoice.objects.create(
        kind=Invoice.Kind.CREDIT_NOTE, issuer=invoice.issuer, account=invoice.account, period=invoice.period,
        year=issued_on.year, sequence=sequence, number=number, credit_for=invoice, reason=reason,
        currency=invoice.currency, subtotal=subtotal, voucher_amount=voucher, amount_due=subtotal - voucher,
        issued_at=now, **{f: getattr(invoice, f) for f in (
            "issuer_name", "issuer_address", "issuer_tax_number", "payer_name", "payer_address", "payer_tax_number",
            "payer_contact", "payer_email", "account_number", "account_name", "funding_programme")})
    if whole:
        InvoiceLine.objects.bulk_create([InvoiceLine(
            invoice=note, position=line.position, instrument_id=line.instrument_id, description=line.description,
            hours=line.hours, samples=line.samples, uses=line.uses, charge_count=line.charge_count,
            amount=line.amount, voucher_amount=line.voucher_amount) for line in invoice.lines.order_by("position")])
        _reverse_vouchers(invoice, note, now)
    else:
        InvoiceLine.objects.create(invoice=note, position=1, description=reason[:300], amount=credit)
    before = {"state": invoice.state, "credited_amount": invoice.credited_amount}
    invoice.credited_amount += note.amount_due
    if full:
        invoice.state = Invoice.State.CREDITED
    invoice.save(update_fields=["credited_amount", "state"])
    record(actor=actor, action="billing.invoice.credited", target=invoice, reason=reason, before=before,
           after={"credit_note": number, "credited_amount": invoice.credited_amount, "state": invoice.state})
    record(actor=actor, action="billing.credit_note.issued", target=note, reason=reason,
           after={"number": number, "credit_for": invoice.number, "amount_due": note.amount_due})
    refunds = _plan_refunds(invoice, note, now)
    if refunds:
        from ..tasks import send_refund

        for refund in refunds:
            transaction.on_commit(lambda refund_id=refund.pk: send_refund.delay(refund_id))
    return note


def _reverse_vouchers(invoice: Invoice, note: Invoice, now: dt.datetime) -> None:
    redemptions = list(VoucherEntry.objects.filter(invoice=invoice, kind=VoucherEntry.Kind.REDEEM).order_by("id"))
    if not redemptions:
        return
    vouchers = {v.pk: v for v in Voucher.objects.select_for_update().filter(
        pk__in={entry.voucher_id for entry in redemptions})}
    before = {pk: v.balance for pk, v in vouchers.items()}
    reversals = []
    for entry in redemptions:
        voucher = vouchers[entry.voucher_id]
        voucher.balance -= entry.amount  # the redemption was negative
        reversals.append(VoucherEntry(voucher=voucher, kind=VoucherEntry.Kind.REVERSE, amount=-entry.amount,
                                      balance_after=voucher.balance, charge_id=entry.charge_id, invoice=note,
                                      year=entry.year, created_at=now))
    VoucherEntry.objects.bulk_create(reversals)
    Voucher.objects.bulk_update(list(vouchers.values()), ["balance"])
    for pk, voucher in vouchers.items():
        record(actor=None, action="billing.voucher.reversed", target=voucher, before={"balance": before[pk]},
               after={"balance": voucher.balance, "credit_note": note.number})


def _plan_refunds(invoice: Invoice, note: Invoice, now: dt.datetime) -> list[Refund]:
    """Refund rows (with their idempotency keys) for online payments, up to the credited amount."""
    remaining = note.amount_due
    refunds = []
    paid = Payment.objects.filter(invoice=invoice, method=Payment.Method.STRIPE, state=Payment.State.SUCCEEDED) \
        .order_by("id")
    for payment in paid:
        refunded = payment.refunds.exclude(state=Refund.State.FAILED).aggregate(total=Sum("amount"))["total"] or ZERO
        amount = min(remaining, payment.amount - refunded)
        if amount <= 0:
            continue
        refunds.append(Refund.objects.create(payment=payment, credit_note=note, amount=amount,
                                             currency=payment.currency, created_at=now,
                                             idempotency_key=f"refund-{note.pk}-{payment.pk}"))
        remaining -= amount
        if remaining <= 0:
            break
    return refunds


# --- manual payments ----------------------------------------------------------------------------


def settle(invoice: Invoice, now: dt.datetime) -> bool:
    """Mark the (locked) invoice paid once succeeded payments cover what is due. Returns whether it moved."""
    paid = invoice.payments.filter(state=Payment.State.SUCCEEDED).aggregate(total=Sum("amount"))["total"] or ZERO
    fields = []
    if paid != invoice.amount_paid:
        invoice.amount_paid = paid
        fields.append("amount_paid")
    if invoice.state == Invoice.State.ISSUED and paid >= invoice.amount_due - invoice.credited_amount:
        invoice.state, invoice.paid_at = Invoice.State.PAID, now
        fields += ["state", "paid_at"]
    if fields:
        invoice.save(update_fields=fields)
    return "state" in fields


@transaction.atomic
def record_transfer(*, actor, invoice_id: int, amount, reference: str, now: dt.datetime | None = None) -> Payment:
    """Finance records a bank transfer it received."""
    now = now or timezone.now()
    invoice = Invoice.objects.select_for_update().filter(pk=invoice_id, kind=Invoice.Kind.INVOICE).first()
    if invoice is None or not queries.visible_invoices(actor).filter(pk=invoice_id).exists():
        raise NotFound("not_found", "No such invoice.")
    if not queries.can_manage_org_billing(actor, invoice.issuer_id):
        raise Forbidden("forbidden", "Only the issuer's finance officers record payments.")
    reference = (reference or "").strip()[:200]
    if not reference:
        raise Invalid("reference_required", "Give the bank transfer's reference.")
    payment = Payment.objects.create(invoice=invoice, method=Payment.Method.TRANSFER, amount=checked_amount(amount),
                                     currency=invoice.currency, state=Payment.State.SUCCEEDED, reference=reference,
                                     idempotency_key=f"transfer-{invoice.pk}-{now.timestamp()}-{reference}"[:80],
                                     created_by=actor, created_at=now, succeeded_at=now)
    settle(invoice, now)
    record(actor=actor, action="billing.payment.recorded", target=payment,
           after={"invoice": invoice.number, "amount": payment.amount, "reference": reference,
                  "invoice_state": invoice.state})
    return payment


def is_finance_or_admin(user) -> bool:
    return bool(queries.finance_org_ids(user)) or people.is_platform_admin(user)
