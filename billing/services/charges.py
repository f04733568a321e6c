"""Charges: billable items priced into charges (in bulk), manual adjustments and waivers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record, record_many
from instrumentshare.core.errors import Conflict, NotFound
from usage.models import BillableItem, ServiceRecord

from .. import queries
from ..models import (
    BillingAccount,
    Charge,
)
from ..money import ZERO
from ..pricing import RateBook, local_day, price_item
from .accounts import AccountDirectory, account_for_item
from .common import checked_amount, checked_reason

CHARGE_CHUNK = 2000


# --- charges ------------------------------------------------------------------------------------


@dataclass
class ChargeRun:
    created: int = 0
    unassigned: int = 0
    unpriced: int = 0
    amount: Decimal = ZERO
    charge_ids: list[int] = field(default_factory=list)


def service_record_fields(account: BillingAccount) -> dict:
    project = f"{account.number} {account.name}".strip() if account.kind == BillingAccount.Kind.PROJECT else ""
    return {"project": project[:200], "funding_programme": account.funding_programme[:200]}


def _charge_chunk(items: list[BillableItem], *, month: str | None, closed: dict[int, set[str]],
                  run: ChargeRun, now: dt.datetime) -> None:
    records = {r.item_id: r for r in ServiceRecord.objects.filter(item_id__in=[item.pk for item in items])}
    book = RateBook.load({item.instrument_id for item in items})
    directory = AccountDirectory.for_items(items)
    new_charges: list[Charge] = []
    for item in items:
        account = account_for_item(item, directory)
        if account is None:
            run.unassigned += 1
            continue
        price = price_item(item, book, record=records.get(item.pk))
        if price is None:
            run.unpriced += 1
            continue
        provider_id = item.instrument.organization_id
        period = month or queries.open_month(queries.month_of(local_day(item.service_start, item.instrument.zone)),
                                             closed.get(provider_id, set()))
        new_charges.append(Charge(
            kind=Charge.Kind.USAGE, item=item, account=account, provider_id=provider_id, instrument=item.instrument,
            user=item.user, period=period,
            service_start=item.service_start, user_class=price.user_class, unit=price.unit, quantity=price.quantity,
            minutes=price.minutes, rate_card_id=price.rate_card_id, unit_price=price.unit_price,
            surcharge=price.surcharge, minimum_applied=price.minimum_applied, amount=price.amount,
            currency=price.currency, created_at=now))
    if not new_charges:
        return
    Charge.objects.bulk_create(new_charges, batch_size=1000)
    # Billed items are final: reconciliation only touches open ones from now on.
    BillableItem.objects.filter(pk__in=[c.item_id for c in new_charges], state=BillableItem.State.OPEN).update(
        state=BillableItem.State.BILLED)
    touched = []
    for charge in new_charges:
        service_record = records.get(charge.item_id)
        if service_record is not None:
            service_record.fee = charge.amount
            for name, value in service_record_fields(charge.account).items():
                setattr(service_record, name, value)
            touched.append(service_record)
    ServiceRecord.objects.bulk_update(touched, ["fee", "project", "funding_programme"], batch_size=1000)
    record_many(actor=None, action="billing.charge.created", now=now, entries=[
        {"target": charge, "after": {"item_id": charge.item_id, "account_id": charge.account_id,
                                     "period": charge.period, "rate_card_id": charge.rate_card_id,
                                     "quantity": charge.quantity, "unit_price": charge.unit_price,
                                     "amount": charge.amount}} for charge in new_charges])
    run.created += len(new_charges)
    run.amount += sum((c.amount for c in new_charges), ZERO)
    run.charge_ids.extend(c.pk for c in new_charges)


def charge_items(*, provider_id: int | None = None, before: dt.datetime, month: str | None = None,
                 now: dt.datetime | None = None, chunk_size: int = CHARGE_CHUNK) -> ChargeRun:
    """Turn every open, uncharged billable item that started before ``before`` into a charge.

    Set-based: each chunk of items is priced from rate cards, accounts and service records read in
    a handful of queries, written with bulk inserts and one update, in its own transaction with the
    items locked (reconciliation may be updating them). Items with no account or no price stay
    open and are counted. ``month`` puts every charge in that period (a close); otherwise each goes
    to its service month, or the first month after it not yet closed. Safe to run again.
    """
    now = now or timezone.now()
    base = BillableItem.objects.filter(state=BillableItem.State.OPEN, service_start__lt=before, charge__isnull=True)
    if provider_id is not None:
        base = base.filter(instrument__organization_id=provider_id)
    run, last_id = ChargeRun(), 0
    while True:
        with transaction.atomic():
            ids = list(base.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:chunk_size])
            if not ids:
                return run
            last_id = ids[-1]
            items = list(BillableItem.objects.select_for_update(of=("self",)).filter(
                pk__in=ids, state=BillableItem.State.OPEN, charge__isnull=True).select_related(
                "instrument", "user", "user__organization", "booking").order_by("pk"))
            closed = queries.closed_months({item.instrument.organization_id for item in items})
            _charge_chunk(items, month=month, closed=closed, run=run, now=now)


def _correction_period(provider_id: int, day: dt.date) -> str:
    closed = queries.closed_months([provider_id]).get(provider_id, set())
    return queries.open_month(queries.month_of(day), closed)


@transaction.atomic
def adjust_charges(*, actor, account_id: int, instrument_id: int, amount, reason: str,
                   adjusts_id: int | None = None, now: dt.datetime | None = None) -> Charge:
    """A manual correction (positive or negative) on an account, for one instrument, with a reason.
    It goes into the provider's open period and onto that period's invoice."""
    now = now or timezone.now()
    instrument = Instrument.objects.filter(pk=instrument_id).first()
    if instrument is None or not queries.can_manage_org_billing(actor, instrument.organization_id):
        raise NotFound("not_found", "No such instrument.")
    account = BillingAccount.objects.filter(pk=account_id).first()
    if account is None:
        raise NotFound("not_found", "No such account.")
    original = None
    if adjusts_id is not None:
        original = Charge.objects.filter(pk=adjusts_id, instrument=instrument, account=account).first()
        if original is None:
            raise NotFound("not_found", "No such charge.")
    charge = Charge.objects.create(
        kind=Charge.Kind.ADJUSTMENT, adjusts=original, account=account, provider_id=instrument.organization_id,
        instrument=instrument, user=original.user if original else None,
        period=_correction_period(instrument.organization_id, local_day(now, instrument.zone)),
        service_start=original.service_start if original else now, amount=checked_amount(amount, allow_negative=True),
        currency=account.currency, reason=checked_reason(reason), created_by=actor, created_at=now)
    record(actor=actor, action="billing.charge.adjusted", target=charge, reason=charge.reason,
           after={"account_id": account.pk, "instrument_id": instrument.pk, "amount": charge.amount,
                  "period": charge.period, "adjusts_id": adjusts_id})
    return charge


@transaction.atomic
def waive_charge(*, actor, charge_id: int, reason: str, now: dt.datetime | None = None) -> Charge:
    """Cancel a charge with a reason: a waiver row of the opposite amount, on the same invoice when
    the charge is not invoiced yet, else on the next one."""
    now = now or timezone.now()
    charge = Charge.objects.select_for_update(of=("self",)).select_related("instrument").filter(pk=charge_id).first()
    if charge is None or not (queries.can_manage_org_billing(actor, charge.provider_id)
                              or people.is_lab_manager(actor, charge.instrument.lab_id)):
        raise NotFound("not_found", "No such charge.")
    if charge.kind == Charge.Kind.WAIVER:
        raise Conflict("not_waivable", "A waiver cannot be waived.")
    if Charge.objects.filter(adjusts=charge, kind=Charge.Kind.WAIVER).exists():
        raise Conflict("already_waived", "This charge is already waived.")
    closed = queries.closed_months([charge.provider_id]).get(charge.provider_id, set())
    period = charge.period if charge.invoice_id is None and charge.period not in closed else \
        queries.open_month(queries.month_of(local_day(now, charge.instrument.zone)), closed)
    waiver = Charge.objects.create(
        kind=Charge.Kind.WAIVER, adjusts=charge, account_id=charge.account_id, provider_id=charge.provider_id,
        instrument=charge.instrument, user=charge.user, period=period, service_start=charge.service_start,
        user_class=charge.user_class, unit=charge.unit, amount=-charge.amount, currency=charge.currency,
        reason=checked_reason(reason), created_by=actor, created_at=now)
    record(actor=actor, action="billing.charge.waived", target=charge, reason=waiver.reason,
           after={"waiver_id": waiver.pk, "amount": waiver.amount, "period": period})
    return waiver
