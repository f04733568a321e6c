"""Every write about accounts, rate cards, charges and vouchers: rules, ``atomic``, audit.

Closing periods and invoices are in ``closing.py``; payments and Stripe in ``payments.py``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab, Organization, User
from instrumentshare.audit.services import changes, record, record_many
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from usage.models import BillableItem, ServiceRecord

from . import queries
from .models import (
    AccountAuthorization,
    BillingAccount,
    BookingAccount,
    Charge,
    Rate,
    RateCard,
    UserClass,
    Voucher,
    VoucherEntry,
)
from .money import ZERO, money
from .pricing import RateBook, local_day, price_item

ACCOUNT_FIELDS = (
    "kind", "organization_id", "lab_id", "number", "name", "funding_programme", "pi_id", "valid_from", "valid_until",
    "budget_cap", "budget_warning_percent", "billing_name", "billing_address", "tax_number", "contact_name",
    "contact_email", "contact_phone", "currency", "is_active",
)
EDITABLE_ACCOUNT_FIELDS = set(ACCOUNT_FIELDS) - {"kind", "organization_id", "lab_id"}
CHARGE_CHUNK = 2000


def _validated(instance, exclude=None):
    try:
        instance.full_clean(exclude=exclude, validate_unique=True)
    except ValidationError as error:
        detail = "; ".join(f"{key}: {' '.join(value)}" for key, value in error.message_dict.items())
        raise Invalid("invalid", detail) from error
    return instance


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("reason_required", "Give a reason: it is kept in the audit trail.")
    if len(reason) > 500:
        raise Invalid("reason_too_long", "A reason is at most 500 characters.")
    return reason


def _amount(value, *, allow_zero=False, allow_negative=False) -> Decimal:
    try:
        amount = money(value)
    except (InvalidOperation, TypeError, ValueError) as error:
        raise Invalid("invalid_amount", "Not an amount of money.") from error
    if (amount == 0 and not allow_zero) or (amount < 0 and not allow_negative) or abs(amount) >= Decimal("1e11"):
        raise Invalid("invalid_amount", "The amount is out of range.")
    return amount


# --- billing accounts ---------------------------------------------------------------------------


def _require_org_finance(actor, organization_id: int, kind: str | None = None) -> None:
    if queries.can_manage_org_billing(actor, organization_id):
        return
    # An external payer is registered by any provider's finance, or by the company's own people.
    if kind == BillingAccount.Kind.EXTERNAL and (queries.finance_org_ids(actor)
                                                 or queries.company_id_of(actor) == organization_id):
        return
    raise Forbidden("forbidden", "Only the organization's finance officers manage its billing.")


@transaction.atomic
def create_account(*, actor, kind: str, organization: Organization, number: str, name: str, lab: Lab | None = None,
                   pi: User | None = None, **fields) -> BillingAccount:
    """An internal cost centre (of a lab), a research project (led by a PI) or an external payer."""
    if actor is not None:
        _require_org_finance(actor, organization.pk, kind)
    if kind == BillingAccount.Kind.COST_CENTRE and (lab is None or lab.organization_id != organization.pk):
        raise Invalid("invalid_lab", "A cost centre belongs to a lab of the same organization.")
    if kind == BillingAccount.Kind.PROJECT and pi is None:
        raise Invalid("pi_required", "A research project names its principal investigator.")
    account = BillingAccount(kind=kind, organization=organization, number=(number or "").strip(),
                             name=(name or "").strip(), lab=lab if kind == BillingAccount.Kind.COST_CENTRE else None,
                             pi=pi, **fields)
    _validated(account)
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError as error:
        raise Conflict("account_exists", "This organization already has that account.") from error
    record(actor=actor, action="billing.account.created", target=account, after=changes(account, ACCOUNT_FIELDS))
    return account


@transaction.atomic
def update_account(*, actor, account_id: int, **fields) -> BillingAccount:
    account = BillingAccount.objects.select_for_update().filter(pk=account_id).first()
    if account is None or not queries.visible_accounts(actor).filter(pk=account_id).exists():
        raise NotFound("not_found", "No such account.")
    _require_org_finance(actor, account.organization_id, account.kind)
    unknown = set(fields) - EDITABLE_ACCOUNT_FIELDS - {"pi"}
    if unknown:
        raise Invalid("invalid_field", f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    before = changes(account, ACCOUNT_FIELDS)
    for name, value in fields.items():
        setattr(account, name, value)
    _validated(account)
    account.save()
    after = changes(account, ACCOUNT_FIELDS)
    diff = {key: value for key, value in after.items() if before.get(key) != value}
    if diff:
        record(actor=actor, action="billing.account.updated", target=account,
               before={key: before[key] for key in diff}, after=diff)
    return account


def _payer_account(organization_id: int) -> BillingAccount | None:
    return queries.accounts().filter(kind=BillingAccount.Kind.EXTERNAL, organization_id=organization_id).first()


def default_account_for(user) -> BillingAccount | None:
    """Where a user's use is charged when they name no account: their company's payer account,
    else the cost centre of their first lab (the lab bookings charge by default), else their
    organization's payer account."""
    if user.organization_id and user.organization.kind == Organization.Kind.COMPANY:
        return _payer_account(user.organization_id)
    lab_ids = sorted(people.member_lab_ids(user))
    if lab_ids:
        account = queries.accounts().filter(kind=BillingAccount.Kind.COST_CENTRE, lab_id=lab_ids[0]).first()
        if account is not None:
            return account
    if user.organization_id:
        return _payer_account(user.organization_id)
    return None


def check_account_usable(account: BillingAccount, *, day: dt.date) -> None:
    if not account.is_valid_on(day):
        raise Forbidden("account_not_allowed", "This billing account is not valid on that day.",
                        extra={"reason": "expired"})
    if account.budget_cap is not None and queries.budget_status(account)["exhausted"]:
        raise Forbidden("account_not_allowed", "This billing account has reached its budget cap.",
                        extra={"reason": "budget_exhausted"})


def resolve_account_for_booking(*, user, account_id: int | None, instrument: Instrument,
                                start: dt.datetime | None = None, now: dt.datetime | None = None
                                ) -> BillingAccount | None:
    """The account a booking is charged to, checked: the user may charge it, it is valid on the
    day of use (the booking's ``start`` in the instrument's zone; ``now`` when no start is given),
    and its budget is not exhausted. ``None`` when the user has no account at all."""
    day = local_day(start or now or timezone.now(), instrument.zone)
    if account_id is None:
        account = default_account_for(user)
        if account is None:
            return None
    else:
        account = queries.accounts().filter(pk=account_id).filter(queries.chargeable_filter(user)).first()
        if account is None:
            raise Forbidden("account_not_allowed", "You may not charge this billing account.",
                            extra={"reason": "not_authorised"})
    check_account_usable(account, day=day)
    return account


@dataclass
class AccountDirectory:
    """Accounts looked up in bulk for a batch of billable items: named on the booking, by id, lab cost
    centre, payer org."""

    named: dict[int, int] = field(default_factory=dict)   # booking id -> the account named when booking
    by_id: dict[int, BillingAccount] = field(default_factory=dict)
    cost_centres: dict[int, BillingAccount] = field(default_factory=dict)
    payers: dict[int, BillingAccount] = field(default_factory=dict)

    @classmethod
    def for_items(cls, items) -> AccountDirectory:
        lab_ids = {item.lab_id for item in items if item.lab_id}
        organization_ids = {item.user.organization_id for item in items if item.user_id and item.user.organization_id}
        directory = cls()
        directory.named = dict(BookingAccount.objects.filter(
            booking_id__in=[item.booking_id for item in items if item.booking_id]).values_list("booking_id",
                                                                                               "account_id"))
        rows = queries.accounts().filter(pk__in=set(directory.named.values())) | queries.accounts().filter(
            kind=BillingAccount.Kind.COST_CENTRE, lab_id__in=lab_ids) | queries.accounts().filter(
            kind=BillingAccount.Kind.EXTERNAL, organization_id__in=organization_ids)
        for account in rows:
            directory.by_id[account.pk] = account
            if account.kind == BillingAccount.Kind.COST_CENTRE:
                directory.cost_centres[account.lab_id] = account
            elif account.kind == BillingAccount.Kind.EXTERNAL:
                directory.payers[account.organization_id] = account
        return directory


def account_for_item(item: BillableItem, directory: AccountDirectory | None = None) -> BillingAccount | None:
    """The account a billable item is charged to: the account named on its booking; a company user's
    company payer account; the cost centre of the booker's lab; their organization's payer account.
    ``None`` when nothing fits (finance assigns it)."""
    directory = directory or AccountDirectory.for_items([item])
    named = directory.named.get(item.booking_id) if item.booking_id else None
    if named and named in directory.by_id:
        return directory.by_id[named]
    organization = item.user.organization if item.user_id else None
    if organization is not None and organization.kind == Organization.Kind.COMPANY:
        return directory.payers.get(organization.pk)
    if item.lab_id and item.lab_id in directory.cost_centres:
        return directory.cost_centres[item.lab_id]
    return directory.payers.get(organization.pk) if organization is not None else None


class BookingAccountPart:
    """Billing's part of a booking (``bookings.extensions.booking_parts``): the account it is charged to."""

    @staticmethod
    def form_fields(*, user, instrument) -> dict:
        from django import forms
        from django.utils.translation import gettext_lazy as _

        accounts = list(queries.chargeable_accounts(user))
        if len(accounts) < 2:   # one account or none: the default is the only choice
            return {}
        choices = [("", _("My default account (my lab's or my company's)"))] + [(a.pk, str(a)) for a in accounts]
        return {"account_id": forms.TypedChoiceField(label=_("Account to charge"), choices=choices, coerce=int,
                                                     required=False, empty_value=None)}

    @staticmethod
    def prepare(*, user, instrument, start, extras) -> BillingAccount | None:
        return resolve_account_for_booking(user=user, account_id=extras.get("account_id"), instrument=instrument,
                                           start=start)

    @staticmethod
    def save(*, booking, state: BillingAccount | None) -> dict:
        if state is not None:
            BookingAccount.objects.create(booking=booking, account=state)
        return {"account_id": state.pk if state is not None else None}

    @staticmethod
    def check_move(*, booking, start) -> None:
        """A moved booking must still be chargeable to its account on the new day."""
        account_id = BookingAccount.objects.filter(booking=booking).values_list("account_id", flat=True).first()
        if account_id is not None:
            resolve_account_for_booking(user=booking.user, account_id=account_id, instrument=booking.instrument,
                                        start=start)

    @staticmethod
    def facts(bookings) -> dict[int, dict]:
        links = BookingAccount.objects.filter(booking_id__in=[b.pk for b in bookings]).select_related("account")
        return {link.booking_id: {"account_id": link.account_id, "account": str(link.account)} for link in links}


# --- who may charge an account ------------------------------------------------------------------


def _visible_account(user, account_id: int) -> BillingAccount:
    account = queries.visible_accounts(user).filter(pk=account_id).first()
    if account is None:
        raise NotFound("not_found", "No such account.")
    return account


def _may_decide(actor, account: BillingAccount) -> bool:
    return account.pi_id == getattr(actor, "pk", None) or queries.can_manage_org_billing(actor, account.organization_id)


@transaction.atomic
def request_account_access(*, user, account_id: int, note: str = "") -> AccountAuthorization:
    """A researcher asks to charge a project; its PI decides."""
    account = BillingAccount.objects.filter(pk=account_id, kind=BillingAccount.Kind.PROJECT, is_active=True).first()
    if account is None:
        raise NotFound("not_found", "No such project account.")
    authorization, created = AccountAuthorization.objects.select_for_update().get_or_create(
        account=account, user=user, defaults={"note": (note or "")[:300]})
    if not created and authorization.state in (AccountAuthorization.State.PENDING, AccountAuthorization.State.APPROVED):
        return authorization
    if not created:
        authorization.state, authorization.requested_at = AccountAuthorization.State.PENDING, timezone.now()
        authorization.decided_by = authorization.decided_at = None
        authorization.save()
    record(actor=user, action="billing.account_access.requested", target=authorization,
           after={"account_id": account.pk, "user_id": user.pk})
    return authorization


@transaction.atomic
def decide_account_access(*, actor, authorization_id: int, approve: bool, note: str = "",
                          now: dt.datetime | None = None) -> AccountAuthorization:
    authorization = AccountAuthorization.objects.select_for_update().select_related("account").filter(
        pk=authorization_id).first()
    if authorization is None or not _may_decide(actor, authorization.account):
        raise NotFound("not_found", "No such request.")
    state = AccountAuthorization.State.APPROVED if approve else AccountAuthorization.State.DECLINED
    if authorization.state == state:
        return authorization
    before = {"state": authorization.state}
    authorization.state, authorization.decided_by, authorization.decided_at = state, actor, now or timezone.now()
    authorization.note = (note or authorization.note)[:300]
    authorization.save()
    record(actor=actor, action="billing.account_access.decided", target=authorization, before=before,
           after={"state": state, "account_id": authorization.account_id, "user_id": authorization.user_id})
    return authorization


@transaction.atomic
def authorize_user(*, actor, account_id: int, user: User, now: dt.datetime | None = None) -> AccountAuthorization:
    """The PI (or finance) lets a user charge the account directly."""
    account = _visible_account(actor, account_id)
    if not _may_decide(actor, account):
        raise Forbidden("forbidden", "Only the account's PI or finance decide who may charge it.")
    authorization, _created = AccountAuthorization.objects.get_or_create(account=account, user=user)
    return decide_account_access(actor=actor, authorization_id=authorization.pk, approve=True, now=now)


@transaction.atomic
def revoke_account_access(*, actor, account_id: int, user_id: int, now: dt.datetime | None = None) -> None:
    account = _visible_account(actor, account_id)
    if not _may_decide(actor, account):
        raise Forbidden("forbidden", "Only the account's PI or finance decide who may charge it.")
    authorization = AccountAuthorization.objects.select_for_update().filter(account=account, user_id=user_id).first()
    if authorization is None or authorization.state == AccountAuthorization.State.REVOKED:
        return
    before = {"state": authorization.state}
    authorization.state, authorization.decided_by = AccountAuthorization.State.REVOKED, actor
    authorization.decided_at = now or timezone.now()
    authorization.save()
    record(actor=actor, action="billing.account_access.revoked", target=authorization, before=before,
           after={"state": authorization.state})


# --- rate cards ---------------------------------------------------------------------------------


def can_manage_rates(user, instrument: Instrument) -> bool:
    return people.is_lab_manager(user, instrument.lab_id) or queries.can_manage_org_billing(
        user, instrument.organization_id)


def _last_charged_day(instrument: Instrument) -> dt.date | None:
    last = Charge.objects.filter(instrument=instrument, rate_card__isnull=False).aggregate(
        last=Max("service_start"))["last"]
    return local_day(last, instrument.zone) if last else None


@transaction.atomic
def create_rate_card(*, actor, instrument_id: int, valid_from: dt.date, rates: list[dict],
                     minimum_charge=Decimal("0"), assisted_surcharge=Decimal("0"), note: str = "",
                     currency: str | None = None) -> RateCard:
    """A new price list from ``valid_from`` on. It may not reach back over charges already made:
    a past charge keeps the price it was made with."""
    instrument = Instrument.objects.select_for_update().filter(pk=instrument_id).first()
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    if actor is not None and not can_manage_rates(actor, instrument):
        raise Forbidden("forbidden", "Only the instrument's lab managers or finance set its rates.")
    last = _last_charged_day(instrument)
    if last is not None and valid_from <= last:
        raise Conflict("rate_card_backdated",
                       f"Charges up to {last.isoformat()} are already priced; a new card starts after that day.")
    if RateCard.objects.filter(instrument=instrument, valid_from=valid_from).exists():
        raise Conflict("rate_card_exists", "A rate card already starts on that day.")
    if not rates:
        raise Invalid("rates_required", "A rate card has at least one price.")
    card = RateCard(instrument=instrument, valid_from=valid_from,
                    minimum_charge=_amount(minimum_charge, allow_zero=True),
                    assisted_surcharge=_amount(assisted_surcharge, allow_zero=True), note=(note or "")[:300],
                    created_by=actor)
    if currency:
        card.currency = currency.upper()
    _validated(card, exclude=["instrument", "created_by"])
    card.save()
    seen = set()
    objects = []
    for row in rates:
        key = (row["user_class"], row["unit"])
        if row["user_class"] not in UserClass.values or row["unit"] not in BillableItem.Unit.values or key in seen:
            raise Invalid("invalid_rate", f"Unknown or repeated rate {key}.")
        seen.add(key)
        objects.append(Rate(card=card, user_class=row["user_class"], unit=row["unit"],
                            price=_amount(row["price"], allow_zero=True)))
    Rate.objects.bulk_create(objects)
    record(actor=actor, action="billing.rate_card.created", target=card,
           after={"instrument_id": instrument.pk, "valid_from": valid_from, "minimum_charge": card.minimum_charge,
                  "assisted_surcharge": card.assisted_surcharge,
                  "rates": [[r.user_class, r.unit, str(r.price)] for r in objects]})
    return card


@transaction.atomic
def delete_rate_card(*, actor, card_id: int) -> None:
    card = RateCard.objects.select_for_update().select_related("instrument").filter(pk=card_id).first()
    # Rate cards are public with their instrument: who sees the instrument and may not set its rates gets 403.
    if card is None or not catalog_queries.visible_instruments(actor).filter(pk=card.instrument_id).exists():
        raise NotFound("not_found", "No such rate card.")
    if not can_manage_rates(actor, card.instrument):
        raise Forbidden("forbidden", "Only the instrument's lab managers or finance set its rates.")
    if Charge.objects.filter(rate_card=card).exists():
        raise Conflict("rate_card_used", "Charges were priced with this card; add a new card instead.")
    record(actor=actor, action="billing.rate_card.deleted", target=card,
           before={"instrument_id": card.instrument_id, "valid_from": card.valid_from})
    card.rates.all().delete()
    card.delete()


# --- charges ------------------------------------------------------------------------------------


@dataclass
class ChargeRun:
    created: int = 0
    unassigned: int = 0
    unpriced: int = 0
    amount: Decimal = ZERO
    charge_ids: list[int] = field(default_factory=list)


def _service_record_fields(account: BillingAccount) -> dict:
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
            for name, value in _service_record_fields(charge.account).items():
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
        service_start=original.service_start if original else now, amount=_amount(amount, allow_negative=True),
        currency=account.currency, reason=_reason(reason), created_by=actor, created_at=now)
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
        reason=_reason(reason), created_by=actor, created_at=now)
    record(actor=actor, action="billing.charge.waived", target=charge, reason=waiver.reason,
           after={"waiver_id": waiver.pk, "amount": waiver.amount, "period": period})
    return waiver


# --- innovation vouchers ------------------------------------------------------------------------


def _voucher_number(now: dt.datetime) -> str:
    return f"IV-{timezone.localtime(now):%Y%m%d}-{secrets.token_hex(3).upper()}"


@transaction.atomic
def issue_voucher(*, actor, company: Organization, amount, share_percent, valid_from: dt.date, valid_until: dt.date,
                  yearly_cap=None, eligible_providers=(), number: str | None = None,
                  now: dt.datetime | None = None) -> Voucher:
    """The science bureau issues an innovation voucher to a company."""
    now = now or timezone.now()
    if actor is not None and not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only the science bureau issues innovation vouchers.")
    if company.kind != Organization.Kind.COMPANY:
        raise Invalid("not_a_company", "Innovation vouchers go to companies.")
    amount = _amount(amount)
    voucher = Voucher(number=(number or _voucher_number(now)).strip(), company=company, amount=amount,
                      share_percent=Decimal(str(share_percent)),
                      yearly_cap=None if yearly_cap in (None, "") else _amount(yearly_cap),
                      valid_from=valid_from, valid_until=valid_until, balance=amount, issued_by=actor, issued_at=now)
    _validated(voucher, exclude=["issued_by"])
    voucher.save()
    voucher.eligible_providers.set(list(eligible_providers))
    VoucherEntry.objects.create(voucher=voucher, kind=VoucherEntry.Kind.ISSUE, amount=amount, balance_after=amount,
                                year=valid_from.year, created_at=now)
    record(actor=actor, action="billing.voucher.issued", target=voucher,
           after={"company_id": company.pk, "amount": amount, "share_percent": voucher.share_percent,
                  "yearly_cap": voucher.yearly_cap, "valid_from": valid_from, "valid_until": valid_until,
                  "eligible_providers": sorted(o.pk for o in eligible_providers), "balance": amount})
    return voucher


@transaction.atomic
def revoke_voucher(*, actor, voucher_id: int, reason: str) -> Voucher:
    voucher = Voucher.objects.select_for_update().filter(pk=voucher_id).first()
    if voucher is None or not queries.visible_vouchers(actor).filter(pk=voucher_id).exists():
        raise NotFound("not_found", "No such voucher.")
    if not people.is_platform_admin(actor):
        raise Forbidden("forbidden", "Only the science bureau revokes innovation vouchers.")
    if voucher.state == Voucher.State.REVOKED:
        return voucher
    voucher.state = Voucher.State.REVOKED
    voucher.save(update_fields=["state"])
    record(actor=actor, action="billing.voucher.revoked", target=voucher, reason=_reason(reason),
           before={"state": Voucher.State.ACTIVE}, after={"state": voucher.state, "balance": voucher.balance})
    return voucher
