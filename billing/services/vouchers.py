"""Innovation vouchers: issued by the bureau to a company, revoked with a reason (paid out at invoicing)."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from instrumentshare.accounts import queries as people
from instrumentshare.accounts.models import Organization
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Forbidden, Invalid, NotFound

from .. import queries
from ..models import (
    Voucher,
    VoucherEntry,
)
from .common import checked_amount, checked_reason, validated

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
    amount = checked_amount(amount)
    voucher = Voucher(number=(number or _voucher_number(now)).strip(), company=company, amount=amount,
                      share_percent=Decimal(str(share_percent)),
                      yearly_cap=None if yearly_cap in (None, "") else checked_amount(yearly_cap),
                      valid_from=valid_from, valid_until=valid_until, balance=amount, issued_by=actor, issued_at=now)
    validated(voucher, exclude=["issued_by"])
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
    record(actor=actor, action="billing.voucher.revoked", target=voucher, reason=checked_reason(reason),
           before={"state": Voucher.State.ACTIVE}, after={"state": voucher.state, "balance": voucher.balance})
    return voucher
