"""No mass assignment: create and change routes refuse fields the caller may not set (the owner, the
lab or organization, a price, a state) with a 422 naming the field, and nothing changes.

The instrument PATCH has its own table in tests/catalog/test_api_ownership.py."""

import pytest

from billing.models import BillingAccount
from bookings.models import Booking
from catalog.models import Instrument
from instrumentshare.accounts.models import ApiToken
from tests.billing.conftest import billing  # noqa: F401 - shared fixture

pytestmark = pytest.mark.django_db


def refused(response, field: str) -> bool:
    body = response.json()
    return response.status_code == 422 and body["code"] == "invalid" and field in body["detail"]


@pytest.mark.parametrize(("field", "value"), [
    ("listing_state", "published"), ("organization", 2), ("published_at", "2020-01-01T00:00:00Z"),
    ("created_by", 1), ("id", 1),
])
def test_creating_an_instrument_refuses_fields_with_their_own_rules(world, api_as, field, value):
    body = {"lab": "lab-a", "name_zh": "新仪器", "asset_number": "N-1", "category": "010102",
            "original_value": "250000.00", "funded_local": True, field: value}
    response = api_as(world.manager).post("/instruments", body)
    assert refused(response, field), response.content
    assert not Instrument.objects.filter(asset_number="N-1").exists()


BOOKING = {"start": "2026-12-01T09:00:00+08:00", "end": "2026-12-01T10:00:00+08:00", "purpose": "SEM imaging"}


@pytest.mark.parametrize(("field", "value"), [
    ("state", "confirmed"), ("user_id", "other"), ("user", "other"), ("price", "0.00"), ("amount", "0.00"),
    ("is_internal", True), ("sequence", 99), ("organization_id", 1),
])
def test_booking_create_refuses_fields_the_booker_may_not_set(world, api_as, instrument, field, value):
    if value == "other":
        value = world.other_researcher.pk
    body = {**BOOKING, "instrument_id": instrument.pk, field: value}
    response = api_as(world.researcher).post("/bookings", body)
    assert refused(response, field), response.content
    assert not Booking.objects.exists()


@pytest.fixture
def booking(world, api_as, instrument, slot):
    start, end = slot
    response = api_as(world.researcher).post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                                           "end": end.isoformat(), "purpose": "SEM imaging"})
    assert response.status_code == 201, response.content
    return Booking.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize(("field", "value"), [
    ("state", "confirmed"), ("user_id", 1), ("instrument_id", 1), ("purpose", "changed"), ("account_id", 1),
    ("charged_lab_id", 1),
])
def test_booking_patch_changes_the_time_only(world, api_as, booking, field, value):
    start = booking.start + (booking.end - booking.start)
    body = {"start": start.isoformat(), "end": (start + (booking.end - booking.start)).isoformat(), field: value}
    response = api_as(world.researcher).patch(f"/bookings/{booking.pk}", body)
    assert refused(response, field), response.content
    fresh = Booking.objects.get(pk=booking.pk)
    assert (fresh.start, fresh.state, fresh.user_id, fresh.purpose) == (
        booking.start, booking.state, booking.user_id, booking.purpose)


def test_a_booking_is_always_the_callers_own(world, api_as, instrument, slot):
    start, end = slot
    response = api_as(world.researcher).post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                                           "end": end.isoformat(), "purpose": "SEM imaging"})
    assert response.status_code == 201
    assert Booking.objects.get(pk=response.json()["id"]).user == world.researcher


@pytest.mark.parametrize(("field", "value"), [
    ("organization_id", "org_b"), ("kind", "external"), ("number", "CHANGED"), ("lab_id", 1),
    ("stripe_customer_id", "cus_x"), ("spent", "0.00"),
])
def test_a_billing_account_patch_refuses_its_identity_fields(world, api_as, billing, field, value):  # noqa: F811
    if value == "org_b":
        value = world.org_b.pk
    before = BillingAccount.objects.get(pk=billing.lab_a.pk)
    response = api_as(world.finance).patch(f"/billing/accounts/{billing.lab_a.pk}", {field: value})
    assert refused(response, field), response.content
    after = BillingAccount.objects.get(pk=billing.lab_a.pk)
    assert (after.organization_id, after.kind, after.number, after.lab_id, after.stripe_customer_id) == (
        before.organization_id, before.kind, before.number, before.lab_id, before.stripe_customer_id)


def test_a_finance_officer_cannot_create_an_account_in_another_organization(world, api_as):
    response = api_as(world.finance).post("/billing/accounts", {
        "kind": "cost_centre", "organization_id": world.org_b.pk, "lab_id": world.lab_b.pk, "number": "CC-X",
        "name": "Not mine"})
    assert response.status_code in (403, 404), response.content
    assert not BillingAccount.objects.filter(number="CC-X").exists()


def test_a_billing_account_create_refuses_unknown_fields(world, api_as):
    response = api_as(world.finance).post("/billing/accounts", {
        "kind": "cost_centre", "organization_id": world.org_a.pk, "lab_id": world.lab_a.pk, "number": "CC-Y",
        "name": "Mine", "is_active": False, "stripe_customer_id": "cus_x"})
    assert refused(response, "stripe_customer_id"), response.content
    assert not BillingAccount.objects.filter(number="CC-Y").exists()


def test_a_rate_card_refuses_an_instrument_or_lab_in_its_body(world, api_as, billing):  # noqa: F811
    body = {"valid_from": "2027-01-01", "rates": [{"user_class": "internal", "unit": "hour", "price": "1.00"}]}
    api = api_as(world.manager)
    response = api.post(f"/billing/instruments/{billing.instrument.pk}/rate-cards", {**body, "instrument_id": 1})
    assert refused(response, "instrument_id"), response.content
    nested = api.post(f"/billing/instruments/{billing.instrument.pk}/rate-cards",
                      {**body, "rates": [{**body["rates"][0], "discount_percent": 100}]})
    assert refused(nested, "discount_percent"), nested.content
    # another lab's manager may not price this instrument at all
    other = api_as(world.other_manager).post(f"/billing/instruments/{billing.instrument.pk}/rate-cards", body)
    assert other.status_code in (403, 404)


def test_a_token_cannot_be_made_for_someone_else_or_with_more_than_write_scope(world, api_as):
    api = api_as(world.researcher)
    assert refused(api.post("/me/tokens", {"name": "x", "user_id": world.bureau.pk}), "user_id")
    assert api.post("/me/tokens", {"name": "x", "scope": "admin"}).status_code == 422
    assert not ApiToken.objects.filter(name="x").exists()
