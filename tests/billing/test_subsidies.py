"""Post-subsidies: a share of eligible external fees per provider and per enterprise, with caps and exclusions."""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services, subsidies
from billing.models import RelatedParty, SubsidyPolicy
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def year_of_use(world, billing):
    make_item(billing.instrument, world.researcher, start=at(5), minutes=600)          # internal: never counts
    make_item(billing.instrument, world.other_researcher, start=at(6), minutes=60)     # 200.00 external academic
    make_item(billing.instrument, world.company_user, start=at(7), minutes=120)        # 600.00 industry
    make_item(billing.instrument, world.company_user, start=at(8), minutes=60, kind="no_show")  # not a service
    services.issue_voucher(actor=world.bureau, company=world.company, amount="1000", share_percent="40",
                           valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    closing.close_period(actor=None, month=MONTH, now=after_month())


def line_of(lines, organization):
    return next(line for line in lines if line.organization == organization)


def test_providers_get_a_share_of_external_fees_less_what_vouchers_paid(world, year_of_use):
    report = subsidies.report(2026)
    provider = line_of(report["providers"], world.org_a)
    assert provider.records == 2
    assert provider.fees == Decimal("200.00") + Decimal("600.00") - Decimal("240.00")
    assert provider.subsidy == Decimal("112.00")   # 20 % of 560.00


def test_enterprises_get_a_share_of_what_they_paid_themselves_more_when_designated(world, year_of_use):
    enterprise = line_of(subsidies.report(2026)["enterprises"], world.company)
    assert enterprise.fees == Decimal("360.00") and enterprise.subsidy == Decimal("36.00")
    policy = SubsidyPolicy.objects.create(year=2026)
    policy.designated_enterprises.add(world.company)
    assert line_of(subsidies.report(2026)["enterprises"], world.company).subsidy == Decimal("72.00")


def test_caps_and_related_parties(world, year_of_use):
    SubsidyPolicy.objects.create(year=2026, provider_cap=Decimal("50.00"), exclude_voucher_share=False)
    first, second = sorted([world.org_a.pk, world.org_b.pk])
    RelatedParty.objects.create(first_id=first, second_id=second, note="affiliated hospital")
    report = subsidies.report(2026)
    provider = line_of(report["providers"], world.org_a)
    assert provider.records == 1 and provider.fees == Decimal("600.00")
    assert provider.computed == Decimal("120.00") and provider.subsidy == Decimal("50.00") and provider.capped
    assert report["excluded"] == {"related_party": 1}


def test_the_report_through_the_api_is_scoped(world, year_of_use, api_as):
    everything = api_as(world.bureau).get("/billing/subsidies", {"year": 2026}).json()
    assert {line["organization_id"] for line in everything["providers"]} == {world.org_a.pk}
    assert everything["providers"][0]["charge_ids"]
    assert api_as(world.other_finance).get("/billing/subsidies", {"year": 2026}).json()["providers"] == []
    assert api_as(world.researcher).get("/billing/subsidies", {"year": 2026}).status_code == 403
