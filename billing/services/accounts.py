"""Billing accounts: who pays, who may charge which account, and the account a booking or an item
is charged to (billing's part of a booking, ``bookings.extensions.booking_parts``)."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Lab, Organization, User
from instrumentshare.audit.services import changes, record
from instrumentshare.core import rows
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from usage.models import BillableItem

from .. import queries
from ..models import (
    AccountAuthorization,
    BillingAccount,
    BookingAccount,
    SubmissionAccount,
)
from ..pricing import local_day
from .common import validated

ACCOUNT_FIELDS = (
    "kind", "organization_id", "lab_id", "number", "name", "funding_programme", "pi_id", "valid_from", "valid_until",
    "budget_cap", "budget_warning_percent", "billing_name", "billing_address", "tax_number", "contact_name",
    "contact_email", "contact_phone", "currency", "is_active",
)
EDITABLE_ACCOUNT_FIELDS = set(ACCOUNT_FIELDS) - {"kind", "organization_id", "lab_id"}


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
    validated(account)
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
    validated(account)
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
    organization's payer account. A lab has one cost centre and an organization one payer account
    (constraints), so one statement picks between the two candidates; it runs on every booking, so it
    is written out once (``instrumentshare.core.rows``) rather than composed per request."""
    lab_ids = sorted(people.member_lab_ids(user))
    if not lab_ids and not user.organization_id:
        return None
    row = rows.one(_default_account_sql(), [
        BillingAccount.Kind.COST_CENTRE, lab_ids[0] if lab_ids else None, user.organization_id,
        Organization.Kind.COMPANY, BillingAccount.Kind.EXTERNAL, user.organization_id,
        BillingAccount.Kind.COST_CENTRE])
    return rows.from_row(BillingAccount, row) if row else None


@functools.cache
def _default_account_sql() -> str:
    return (f"SELECT {rows.columns(BillingAccount, 'a')} FROM billing_billingaccount a "  # noqa: S608 - names from the models; values are parameters
            "WHERE (a.kind = %s AND a.lab_id = %s AND NOT EXISTS (SELECT 1 FROM accounts_organization o "
            "WHERE o.id = %s AND o.kind = %s)) OR (a.kind = %s AND a.organization_id = %s) "
            "ORDER BY CASE WHEN a.kind = %s THEN 0 ELSE 1 END LIMIT 1")


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
    named_for_requests: dict[int, int] = field(default_factory=dict)   # sample request id -> its account
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
        directory.named_for_requests = dict(SubmissionAccount.objects.filter(
            request_id__in=[item.sample_request_id for item in items if item.sample_request_id]).values_list(
            "request_id", "account_id"))
        named_ids = set(directory.named.values()) | set(directory.named_for_requests.values())
        rows = queries.accounts().filter(pk__in=named_ids) | queries.accounts().filter(
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
    """The account a billable item is charged to: the account named on its booking (or sample request); a company user's
    company payer account; the cost centre of the booker's lab; their organization's payer account.
    ``None`` when nothing fits (finance assigns it)."""
    directory = directory or AccountDirectory.for_items([item])
    named = directory.named.get(item.booking_id) if item.booking_id else None
    if item.sample_request_id:
        named = directory.named_for_requests.get(item.sample_request_id)
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
            rows.insert(BookingAccount(booking=booking, account=state))
        return {"account_id": state.pk if state is not None else None}

    @staticmethod
    def check_move(*, booking, start) -> None:
        """A moved booking must still be chargeable to its account on the new day."""
        account_id = BookingAccount.objects.filter(booking=booking).values_list("account_id", flat=True).first()
        if account_id is not None:
            resolve_account_for_booking(user=booking.user, account_id=account_id, instrument=booking.instrument,
                                        start=start)

    @staticmethod
    def estimate(*, user, instrument, start, end) -> dict | None:
        """What the booking will cost, priced by the rules its charge will use (``queries.booking_estimate``)."""
        return queries.booking_estimate(user=user, instrument=instrument, start=start, end=end)

    @staticmethod
    def facts(bookings) -> dict[int, dict]:
        links = BookingAccount.objects.filter(booking_id__in=[b.pk for b in bookings]).select_related("account")
        return {link.booking_id: BookingAccountPart.new_facts(booking=link.booking, state=link.account)
                for link in links}

    @staticmethod
    def new_facts(*, booking, state: BillingAccount | None) -> dict:
        """``facts`` of a booking just saved with ``state``, without reading it back."""
        return {} if state is None else {"account_id": state.pk, "account": str(state)}


class SubmissionAccountPart:
    """Billing's part of a sample request (``submissions.extensions.request_parts``): the account it is
    charged to, checked as a booking's is, and who besides the requester decides on its quote."""

    @staticmethod
    def prepare(*, user, instrument, extras) -> BillingAccount | None:
        return resolve_account_for_booking(user=user, account_id=extras.get("account_id"), instrument=instrument)

    @staticmethod
    def save(*, request, state: BillingAccount | None) -> dict:
        if state is not None:
            SubmissionAccount.objects.create(request=request, account=state)
        return {"account_id": state.pk if state is not None else None}

    @staticmethod
    def may_decide(*, user, request) -> bool:
        """The project's PI, or the paying company's finance officers, accept or decline quotes for it."""
        link = SubmissionAccount.objects.filter(request=request).select_related("account").first()
        if link is None or not people.is_authenticated(user):
            return False
        account = link.account
        if account.kind == BillingAccount.Kind.PROJECT:
            return account.pi_id == user.pk
        return account.kind == BillingAccount.Kind.EXTERNAL and \
            people.is_finance_officer(user, account.organization_id)

    @staticmethod
    def facts(requests) -> dict[int, dict]:
        links = SubmissionAccount.objects.filter(request_id__in=[r.pk for r in requests]).select_related("account")
        return {link.request_id: {"account_id": link.account_id, "account": str(link.account)} for link in links}


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
