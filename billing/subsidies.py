"""Post-subsidies: the city's yearly reward for sharing, from the year's invoiced external services.

- Per provider organization: ``provider_share_percent`` of its eligible external service fees,
  at most ``provider_cap``.
- Per enterprise user (a company that paid): ``enterprise_share_percent`` (or the designated
  share for designated enterprises) of what it paid, at most ``enterprise_cap``.

Eligible: usage charges (a service, not a no-show fee) on an issued, not credited invoice of the
year, between a provider and a payer of different organizations that are not related parties,
on instruments not excluded; less any waiver. A provider's fees leave out what vouchers paid
when the policy says so (the city already paid that part); an enterprise's are what it paid itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import F, QuerySet

from instrumentshare.accounts.models import Organization
from usage.models import BillableItem

from .models import Charge, Invoice, RelatedParty, SubsidyPolicy
from .money import ZERO, share_of

SERVICE_KINDS = (BillableItem.Kind.BOOKING, BillableItem.Kind.UNBOOKED)


@dataclass
class SubsidyLine:
    organization: Organization
    fees: Decimal = ZERO
    records: int = 0
    percent: Decimal = ZERO
    computed: Decimal = ZERO
    cap: Decimal = ZERO
    subsidy: Decimal = ZERO
    capped: bool = False
    charge_ids: list[int] = field(default_factory=list)


def policy_for(year: int) -> SubsidyPolicy:
    policy = SubsidyPolicy.objects.filter(year=year).first()
    return policy or SubsidyPolicy(year=year)  # unsaved: the defaults


def eligible_charges(year: int, policy: SubsidyPolicy) -> QuerySet[Charge]:
    excluded = list(policy.excluded_instruments.values_list("pk", flat=True)) if policy.pk else []
    rows = Charge.objects.filter(
        kind=Charge.Kind.USAGE, period__startswith=f"{year:04d}-", invoice__isnull=False,
        invoice__state__in=[Invoice.State.ISSUED, Invoice.State.PAID], item__kind__in=SERVICE_KINDS,
        amount__gt=0).exclude(account__organization_id=F("provider_id")).exclude(
        corrections__kind=Charge.Kind.WAIVER).select_related("account__organization", "provider", "instrument",
                                                             "item__service_record")
    if excluded:
        rows = rows.exclude(instrument_id__in=excluded)
    return rows


def _related_pairs() -> set[tuple[int, int]]:
    return {tuple(pair) for pair in RelatedParty.objects.values_list("first_id", "second_id")}


def report(year: int) -> dict:
    """Both tables, each line with its underlying charges' ids (the records behind the figure)."""
    policy = policy_for(year)
    related = _related_pairs()
    designated = set(policy.designated_enterprises.values_list("pk", flat=True)) if policy.pk else set()
    providers: dict[int, SubsidyLine] = {}
    enterprises: dict[int, SubsidyLine] = {}
    excluded = defaultdict(int)
    for charge in eligible_charges(year, policy).order_by("id").iterator(chunk_size=2000):
        payer = charge.account.organization
        pair = tuple(sorted((payer.pk, charge.provider_id)))
        if pair in related:
            excluded["related_party"] += 1
            continue
        provider_fee = charge.amount - (charge.voucher_amount if policy.exclude_voucher_share else ZERO)
        line = providers.setdefault(charge.provider_id, SubsidyLine(organization=charge.provider))
        line.fees += provider_fee
        line.records += 1
        line.charge_ids.append(charge.pk)
        if payer.kind == Organization.Kind.COMPANY:
            line = enterprises.setdefault(payer.pk, SubsidyLine(organization=payer))
            line.fees += charge.amount - charge.voucher_amount
            line.records += 1
            line.charge_ids.append(charge.pk)
    for line in providers.values():
        _finish(line, policy.provider_share_percent, policy.provider_cap)
    for organization_id, line in enterprises.items():
        percent = policy.designated_share_percent if organization_id in designated else policy.enterprise_share_percent
        _finish(line, percent, policy.enterprise_cap)
    return {
        "year": year, "policy": policy, "excluded": dict(excluded),
        "providers": sorted(providers.values(), key=lambda line: -line.subsidy),
        "enterprises": sorted(enterprises.values(), key=lambda line: -line.subsidy),
    }


def _finish(line: SubsidyLine, percent: Decimal, cap: Decimal) -> None:
    line.percent, line.cap = percent, cap
    line.computed = share_of(line.fees, percent)
    line.subsidy = min(line.computed, cap)
    line.capped = line.computed > cap
