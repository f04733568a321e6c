"""Demo billing for ``seed_demo`` (after the catalog and bookings demos): accounts for the demo labs and
companies, a research project, rate cards for every demo instrument, and an innovation voucher for
Blue Sea Biotech. Idempotent: everything is keyed by a natural key and left alone when it exists.

Rates follow what Qingdao's shared platforms charge: roughly with the instrument's value, other
academic users 1.5× and companies 2× the internal rate, by hour, sample or use.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from catalog.models import Instrument
from instrumentshare.accounts.models import Lab, Organization, User

from . import services
from .models import AccountAuthorization, BillingAccount, RateCard, Voucher

RATES_FROM = dt.date(2026, 1, 1)
CLASS_FACTORS = {"internal": Decimal("1"), "academic": Decimal("1.5"), "industry": Decimal("2")}
UNIT_FACTORS = {"hour": Decimal("1"), "sample": Decimal("0.8"), "use": Decimal("2")}
COMPANY_DETAILS = {
    # short key of accounts.demo → contact, phone, tax number shown on invoices comes from the credit code
    "bluesea": ("周经理", "0532-8899 1001", "青岛市城阳区正阳路 200 号 蓝海科技园 3 号楼"),
    "hailan": ("孙主管", "0532-8677 2310", "青岛市黄岛区长江中路 66 号"),
    "zhijian": ("吴会计", "0532-8766 5120", "青岛市李沧区九水东路 18 号"),
}
VOUCHER_NUMBER = "IV-2026-QD-000128"


def _ten(value: Decimal) -> Decimal:
    return (value / 10).quantize(Decimal("1"), rounding=ROUND_HALF_UP) * 10


def internal_hourly(instrument: Instrument) -> Decimal:
    """About 6 × (value in 万元)^0.6 yuan an hour, in tens, at least 50: 300万 → 180, 1500万 → 480."""
    value_wan = float(instrument.original_value) / 10000
    return max(Decimal("50"), _ten(Decimal(str(6 * max(value_wan, 1) ** 0.6))))


def _rates(instrument: Instrument) -> list[dict]:
    base = internal_hourly(instrument)
    return [{"user_class": user_class, "unit": unit, "price": _ten(base * class_factor * unit_factor)}
            for user_class, class_factor in CLASS_FACTORS.items() for unit, unit_factor in UNIT_FACTORS.items()]


def _cost_centres() -> int:
    made = 0
    for lab in Lab.objects.select_related("organization").exclude(organization__kind=Organization.Kind.COMPANY):
        if BillingAccount.objects.filter(kind=BillingAccount.Kind.COST_CENTRE, lab=lab).exists():
            continue
        services.create_account(actor=None, kind=BillingAccount.Kind.COST_CENTRE, organization=lab.organization,
                                lab=lab, number=f"CC-{lab.code.upper()}", name=f"{lab.name_zh}运行经费",
                                funding_programme="仪器共享运行补助", billing_name=lab.organization.name_zh,
                                billing_address=lab.address, contact_email=lab.contact_email)
        made += 1
    return made


def _payers() -> int:
    made = 0
    for organization in Organization.objects.filter(kind=Organization.Kind.COMPANY):
        if BillingAccount.objects.filter(kind=BillingAccount.Kind.EXTERNAL, organization=organization).exists():
            continue
        key = (organization.contact_email.split("@")[-1].split(".")[0]) if organization.contact_email else ""
        contact, phone, address = COMPANY_DETAILS.get(key, ("财务部", organization.phone, organization.address))
        services.create_account(actor=None, kind=BillingAccount.Kind.EXTERNAL, organization=organization,
                                number=f"EXT-{organization.pk:04d}", name=f"{organization.name_zh}（外部付款方）",
                                billing_name=organization.name_zh, billing_address=address,
                                tax_number=organization.credit_code, contact_name=contact, contact_phone=phone,
                                contact_email=organization.contact_email)
        made += 1
    return made


def _project() -> None:
    pi = User.objects.filter(username="labmanager").first()
    ouc = Organization.objects.filter(name_zh="中国海洋大学").first()
    if pi is None or ouc is None or BillingAccount.objects.filter(organization=ouc, number="NSFC-42076128").exists():
        return
    project = services.create_account(
        actor=None, kind=BillingAccount.Kind.PROJECT, organization=ouc, number="NSFC-42076128",
        name="近海珊瑚礁钙化过程的微观机制", funding_programme="国家自然科学基金面上项目", pi=pi,
        valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2028, 12, 31), budget_cap=Decimal("80000.00"),
        budget_warning_percent=80)
    researcher = User.objects.filter(username="researcher").first()
    if researcher is not None:
        AccountAuthorization.objects.get_or_create(
            account=project, user=researcher,
            defaults={"state": AccountAuthorization.State.APPROVED, "decided_by": pi, "note": "课题组成员"})


def _rate_cards() -> int:
    made = 0
    priced = set(RateCard.objects.values_list("instrument_id", flat=True))
    for instrument in Instrument.objects.filter(lab__code__in=Lab.objects.values("code")).exclude(pk__in=priced) \
            .order_by("pk"):
        base = internal_hourly(instrument)
        services.create_rate_card(actor=None, instrument_id=instrument.pk, valid_from=RATES_FROM,
                                  rates=_rates(instrument), minimum_charge=base / 2,
                                  assisted_surcharge=_ten(base * Decimal("0.3")),
                                  note="依据《青岛市大型科学仪器设备共享服务收费指导标准》核定")
        made += 1
    return made


def _voucher() -> None:
    bluesea = Organization.objects.filter(name_zh="青岛蓝海生物科技有限公司").first()
    if bluesea is None or Voucher.objects.filter(number=VOUCHER_NUMBER).exists():
        return
    bureau = User.objects.filter(username="bureau").first()
    services.issue_voucher(actor=bureau, company=bluesea, amount=Decimal("50000.00"), share_percent=Decimal("40"),
                           yearly_cap=Decimal("100000.00"), valid_from=dt.date(2026, 1, 1),
                           valid_until=dt.date(2027, 6, 30), number=VOUCHER_NUMBER)


@transaction.atomic
def seed(stdout=None) -> dict:
    counts = {"cost_centres": _cost_centres(), "payers": _payers()}
    _project()
    counts["rate_cards"] = _rate_cards()
    _voucher()
    if stdout:
        stdout.write(f"demo billing: {counts['cost_centres']} cost centres, {counts['payers']} payer accounts, "
                     f"{counts['rate_cards']} rate cards added; voucher {VOUCHER_NUMBER} for Blue Sea Biotech")
    return counts
