"""The billing API by role: what each named person sees (404 for the rest) and may do (403)."""

import datetime as dt

import pytest
import time_machine

from billing import services
from billing.models import Invoice
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed(world, billing):
    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    make_item(billing.instrument, world.other_researcher, start=at(6), minutes=60)
    make_item(billing.instrument, world.company_user, start=at(7), minutes=60)
    voucher = services.issue_voucher(actor=world.bureau, company=world.company, amount="500", share_percent="40",
                                     valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoices = {i.account_id: i for i in Invoice.objects.all()}
    return {"lab_a": invoices[billing.lab_a.pk], "lab_b": invoices[billing.lab_b.pk],
            "company": invoices[billing.company.pk], "voucher": voucher}


def numbers(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["number"] for row in response.json()["items"]}


def test_each_person_sees_the_invoices_that_concern_them(world, closed, api_as):
    every = {closed[key].number for key in ("lab_a", "lab_b", "company")}
    assert numbers(api_as(world.finance).get("/billing/invoices")) == every          # the issuer
    assert numbers(api_as(world.bureau).get("/billing/invoices")) == every           # the platform
    assert numbers(api_as(world.other_finance).get("/billing/invoices")) == {closed["lab_b"].number}  # the payer
    assert numbers(api_as(world.company_user).get("/billing/invoices")) == {closed["company"].number}
    assert numbers(api_as(world.other_manager).get("/billing/invoices")) == {closed["lab_b"].number}
    assert numbers(api_as(world.researcher).get("/billing/invoices")) == set()


@pytest.mark.parametrize("who", ["researcher", "other_finance", "other_researcher", "manager"])
def test_an_invoice_one_may_not_see_is_404(world, closed, api_as, who):
    invoice = closed["company"]
    client = api_as(getattr(world, who))
    assert client.get(f"/billing/invoices/{invoice.pk}").status_code == 404
    assert client.get(f"/billing/invoices/{invoice.pk}/pdf").status_code == 404
    assert client.post(f"/billing/invoices/{invoice.pk}/credit-notes", {"reason": "x"}).status_code == 404


def test_the_company_sees_its_invoice_with_the_voucher_share_and_a_pdf(world, closed, api_as):
    invoice = closed["company"]
    body = api_as(world.company_user).get(f"/billing/invoices/{invoice.pk}").json()
    assert body["subtotal"] == "300.00" and body["voucher_amount"] == "120.00" and body["amount_due"] == "180.00"
    assert body["payer_name"] == "丙公司（开票）" and len(body["lines"]) == 1
    pdf = api_as(world.company_user).get(f"/billing/invoices/{invoice.pk}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_only_the_issuers_finance_credits_and_records_transfers(world, closed, api_as):
    invoice = closed["lab_b"]
    assert api_as(world.other_finance).post(f"/billing/invoices/{invoice.pk}/credit-notes",
                                            {"reason": "no"}).status_code == 403
    response = api_as(world.finance).post(f"/billing/invoices/{invoice.pk}/transfers",
                                          {"amount": "200.00", "reference": "ICBC 2026-11-05 0042"})
    assert response.status_code == 201
    assert api_as(world.finance).get(f"/billing/invoices/{invoice.pk}").json()["state"] == "paid"


def test_stripe_off_means_no_online_payment(world, closed, api_as):
    response = api_as(world.company_user).post(f"/billing/invoices/{closed['company'].pk}/online-payment")
    assert response.status_code == 409 and response.json()["code"] == "stripe_off"


def test_charges_by_scope(world, closed, api_as):
    mine = api_as(world.researcher).get("/billing/charges").json()
    assert mine["count"] == 1 and mine["total"] == "100.00"
    provider = api_as(world.finance).get("/billing/charges", {"scope": "provider", "period": MONTH}).json()
    assert provider["count"] == 3
    assert api_as(world.other_finance).get("/billing/charges", {"scope": "provider"}).json()["count"] == 0


def test_finance_adjusts_and_waives_with_a_reason_and_others_cannot(world, billing, closed, api_as):
    payload = {"account_id": billing.lab_b.pk, "instrument_id": billing.instrument.pk, "amount": "-20.00",
               "reason": "Goodwill for the outage"}
    assert api_as(world.other_finance).post("/billing/charges/adjustments", payload).status_code == 404
    with time_machine.travel(at(20, month="2026-11"), tick=False):   # the API adjusts "today": 20 November
        created = api_as(world.finance).post("/billing/charges/adjustments", payload)
    assert created.status_code == 201 and created.json()["period"] == "2026-11"   # October is closed
    charge_id = api_as(world.researcher).get("/billing/charges").json()["items"][0]["id"]
    assert api_as(world.researcher).post(f"/billing/charges/{charge_id}/waive", {"reason": "x"}).status_code == 404
    waived = api_as(world.manager).post(f"/billing/charges/{charge_id}/waive", {"reason": "Instrument fault"})
    assert waived.status_code == 201 and waived.json()["amount"] == "-100.00"
    again = api_as(world.finance).post(f"/billing/charges/{charge_id}/waive", {"reason": "Twice"})
    assert again.status_code == 409


def test_vouchers_and_their_statements_by_role(world, closed, api_as):
    voucher = closed["voucher"]
    assert [v["id"] for v in api_as(world.company_user).get("/billing/vouchers").json()] == [voucher.pk]
    assert [v["id"] for v in api_as(world.finance).get("/billing/vouchers").json()] == [voucher.pk]   # redeemed there
    assert api_as(world.other_finance).get(f"/billing/vouchers/{voucher.pk}").status_code == 404
    statement = api_as(world.finance).get(f"/billing/vouchers/{voucher.pk}/statement").json()
    assert statement["redeemed"] == "120.00"
    redeem = [e for e in statement["entries"] if e["kind"] == "redeem"][0]
    assert redeem["service_record_id"] and redeem["invoice_number"] == closed["company"].number
    payload = {"company_id": world.company.pk, "amount": "100", "share_percent": "40", "valid_from": "2026-01-01",
               "valid_until": "2026-12-31"}
    assert api_as(world.finance).post("/billing/vouchers", payload).status_code == 403
    assert api_as(world.bureau).post("/billing/vouchers", payload).status_code == 201


@time_machine.travel(after_month())   # a month can be closed once it is over: "today" is in the next one
def test_periods_close_through_the_api_as_a_task(world, billing, api_as, django_capture_on_commit_callbacks,
                                                 eager_tasks):
    make_item(billing.instrument, world.researcher, start=at(5), minutes=60)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(world.finance).post("/billing/periods", {"organization_id": world.org_a.pk,
                                                                   "month": MONTH})
    assert response.status_code == 202
    period = api_as(world.finance).get(f"/billing/periods/{response.json()['id']}").json()
    assert period["state"] == "closed" and period["invoices_issued"] == 1 and period["percent"] == 100
    assert api_as(world.other_finance).get(f"/billing/periods/{period['id']}").status_code == 404
    assert api_as(world.other_finance).post("/billing/periods", {"organization_id": world.org_a.pk,
                                                                 "month": MONTH}).status_code == 403
    future = api_as(world.finance).post("/billing/periods", {"organization_id": world.org_a.pk, "month": "2099-01"})
    assert future.status_code == 409


def test_rate_cards_and_the_published_fee_standard(world, billing, api_as):
    text = api_as(None).get(f"/billing/instruments/{billing.instrument.pk}/fee-standard").json()["text"]
    assert "100.00" in text and "300.00" in text
    payload = {"valid_from": "2027-01-01", "rates": [{"user_class": "internal", "unit": "hour", "price": "120.00"}]}
    assert api_as(world.other_manager).post(f"/billing/instruments/{billing.instrument.pk}/rate-cards",
                                            payload).status_code == 403
    assert api_as(world.manager).post(f"/billing/instruments/{billing.instrument.pk}/rate-cards",
                                      payload).status_code == 201
    assert len(api_as(None).get(f"/billing/instruments/{billing.instrument.pk}/rate-cards").json()) == 2


def test_accounts_by_role_and_the_pi_decides_access(world, billing, api_as):
    project = api_as(world.finance).post("/billing/accounts", {
        "kind": "project", "organization_id": world.org_a.pk, "number": "NSFC-7", "name": "Deep sea",
        "pi_id": world.manager.pk, "budget_cap": "1000.00"})
    assert project.status_code == 201
    account_id = project.json()["id"]
    assert api_as(world.researcher).get(f"/billing/accounts/{account_id}").status_code == 404
    request = api_as(world.researcher).post(f"/billing/accounts/{account_id}/access-requests", {"note": "thesis"})
    assert request.status_code == 201
    assert [r["id"] for r in api_as(world.manager).get("/billing/access-requests").json()] == [request.json()["id"]]
    decided = api_as(world.manager).post(f"/billing/access-requests/{request.json()['id']}/decide", {"approve": True})
    assert decided.json()["state"] == "approved"
    chargeable = {a["id"] for a in api_as(world.researcher).get("/billing/accounts/chargeable").json()}
    assert chargeable == {billing.lab_a.pk, account_id}
    statement = api_as(world.manager).get(f"/billing/accounts/{account_id}/statement", {"year": 2026}).json()
    assert statement["account"]["budget"]["cap"] == "1000.00"


def test_the_webhook_needs_no_login_but_everything_else_does(world, api_as):
    assert api_as(None).get("/billing/invoices").status_code == 401
    assert api_as(None).post("/billing/stripe/webhook", {}).status_code == 404   # Stripe is off here


def test_my_costs_show_charges_and_estimates(world, billing, closed, api_as):
    make_item(billing.instrument, world.researcher, start=at(3, month="2026-11"), minutes=30)
    rows = api_as(world.researcher).get("/billing/my-costs").json()
    assert [(r["amount"], r["estimated_amount"]) for r in rows] == [(None, "50.00"), ("100.00", None)]


def test_the_webhook_is_exempt_from_csrf_but_checks_its_signature(world):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/api/v1/billing/stripe/webhook", data=b"{}",
                                                     content_type="application/json")
    assert response.status_code == 404   # Stripe is off here; never a CSRF 403
