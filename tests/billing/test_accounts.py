"""Billing accounts: who may charge which, validity, budget caps, and where an item's charge goes."""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services
from billing.models import BillingAccount
from instrumentshare.core.errors import Forbidden
from tests.billing.conftest import at, make_item

pytestmark = pytest.mark.django_db
NOW = at(15)


def project(world, **extra) -> BillingAccount:
    fields = {"funding_programme": "国家自然科学基金", "valid_from": dt.date(2026, 1, 1),
              "valid_until": dt.date(2026, 12, 31), **extra}
    return services.create_account(actor=world.finance, kind="project", organization=world.org_a, number="NSFC-42",
                                   name="Coral reefs", pi=world.manager, **fields)


def test_without_an_account_id_a_researcher_gets_their_labs_cost_centre(world, billing):
    account = services.resolve_account_for_booking(user=world.researcher, account_id=None,
                                                   instrument=billing.instrument, now=NOW)
    assert account == billing.lab_a


def test_without_an_account_id_a_company_user_gets_the_companys_payer_account(world, billing):
    account = services.resolve_account_for_booking(user=world.company_user, account_id=None,
                                                   instrument=billing.instrument, now=NOW)
    assert account == billing.company


def test_nobody_may_charge_another_labs_cost_centre(world, billing):
    with pytest.raises(Forbidden) as refused:
        services.resolve_account_for_booking(user=world.researcher, account_id=billing.lab_b.pk,
                                             instrument=billing.instrument, now=NOW)
    assert refused.value.code == "account_not_allowed"


def test_a_project_is_charged_by_its_pi_and_by_those_the_pi_approved(world, billing):
    account = project(world)
    assert services.resolve_account_for_booking(user=world.manager, account_id=account.pk,
                                                instrument=billing.instrument, now=NOW) == account
    with pytest.raises(Forbidden):
        services.resolve_account_for_booking(user=world.researcher, account_id=account.pk,
                                             instrument=billing.instrument, now=NOW)
    request = services.request_account_access(user=world.researcher, account_id=account.pk, note="SEM for chapter 3")
    with pytest.raises(Exception) as refused:  # not the PI: the request is not even visible
        services.decide_account_access(actor=world.other_researcher, authorization_id=request.pk, approve=True)
    assert refused.value.status == 404
    services.decide_account_access(actor=world.manager, authorization_id=request.pk, approve=True)
    assert services.resolve_account_for_booking(user=world.researcher, account_id=account.pk,
                                                instrument=billing.instrument, now=NOW) == account
    services.revoke_account_access(actor=world.manager, account_id=account.pk, user_id=world.researcher.pk)
    with pytest.raises(Forbidden):
        services.resolve_account_for_booking(user=world.researcher, account_id=account.pk,
                                             instrument=billing.instrument, now=NOW)


def test_an_expired_project_cannot_be_charged(world, billing):
    account = project(world, valid_until=dt.date(2026, 10, 10))
    with pytest.raises(Forbidden) as refused:
        services.resolve_account_for_booking(user=world.manager, account_id=account.pk,
                                             instrument=billing.instrument, now=NOW)
    assert refused.value.extra["reason"] == "expired"


def test_a_budget_cap_warns_then_stops_new_bookings(world, billing):
    from billing import queries

    account = project(world, budget_cap=Decimal("250.00"), budget_warning_percent=50)
    services.adjust_charges(actor=world.finance, account_id=account.pk, instrument_id=billing.instrument.pk,
                            amount="150.00", reason="Consumables for the project")
    status = queries.budget_status(account)
    assert status["warning"] and not status["exhausted"] and status["percent"] == 60
    services.adjust_charges(actor=world.finance, account_id=account.pk, instrument_id=billing.instrument.pk,
                            amount="100.00", reason="Extra staff time")
    with pytest.raises(Forbidden) as refused:
        services.resolve_account_for_booking(user=world.manager, account_id=account.pk,
                                             instrument=billing.instrument, now=NOW)
    assert refused.value.extra["reason"] == "budget_exhausted"


def test_items_are_charged_to_the_cost_centre_of_the_bookers_lab_or_the_companys_payer_account(world, billing):
    internal = make_item(billing.instrument, world.researcher, start=at(5))
    external = make_item(billing.instrument, world.other_researcher, start=at(6))
    company = make_item(billing.instrument, world.company_user, start=at(7))
    assert services.account_for_item(internal) == billing.lab_a
    assert services.account_for_item(external) == billing.lab_b
    assert services.account_for_item(company) == billing.company


def test_only_an_organizations_finance_creates_its_internal_accounts(world):
    with pytest.raises(Forbidden):
        services.create_account(actor=world.other_finance, kind="cost_centre", organization=world.org_a,
                                lab=world.lab_a, number="X", name="X")
    with pytest.raises(Forbidden):
        services.create_account(actor=world.researcher, kind="project", organization=world.org_a, number="P",
                                name="P", pi=world.researcher)
