"""Cost before booking: the estimate on the form and in the API, priced by the rules the charge uses."""

import datetime as dt
from decimal import Decimal

import pytest

from billing import queries, services
from catalog import services as catalog_services
from tests.bookings.conftest import next_weekday

from .conftest import make_card


@pytest.fixture
def priced(billing):
    # The billing fixture's card, valid from 2026-01-01: the estimate takes the card valid on the booking's day.
    return billing.instrument


def when(hours: float = 1.5):
    start = next_weekday(1, 10)
    return start, start + dt.timedelta(hours=hours)


def test_the_api_estimates_by_user_class_minimum_minutes_and_rounding(world, api_as, priced):
    catalog_services.update_policy(actor=world.manager, instrument_id=priced.pk, min_charge_minutes=120,
                                   rounding_minutes=60)
    start, end = when(1.5)   # 90 minutes -> the 120-minute minimum -> 2 hours
    params = {"instrument_id": priced.pk, "start": start.isoformat(), "end": end.isoformat()}
    inside = api_as(world.researcher).get("/bookings/estimate", params).json()
    assert (Decimal(inside["amount"]), inside["user_class"], Decimal(inside["quantity"])) == (
        Decimal("200.00"), "internal", Decimal("2"))
    outside = api_as(world.other_researcher).get("/bookings/estimate", params).json()
    assert (Decimal(outside["amount"]), outside["user_class"]) == (Decimal("400.00"), "academic")
    company = api_as(world.company_user).get("/bookings/estimate", params).json()
    assert (Decimal(company["amount"]), company["user_class"]) == (Decimal("600.00"), "industry")


def test_bad_estimate_requests_are_4xx_and_an_unpriced_instrument_is_204(world, api_as, priced):
    from tests.bookings.conftest import make_instrument

    client = api_as(world.researcher)
    start, end = when()
    assert client.get("/bookings/estimate", {"instrument_id": priced.pk, "start": end.isoformat(),
                                             "end": start.isoformat()}).status_code == 422
    assert client.get("/bookings/estimate", {"instrument_id": priced.pk, "start": "soon",
                                             "end": end.isoformat()}).status_code == 422
    assert client.get("/bookings/estimate", {"instrument_id": 999999, "start": start.isoformat(),
                                             "end": end.isoformat()}).status_code == 404
    unpriced = make_instrument(world, name="无价目")
    assert client.get("/bookings/estimate", {"instrument_id": unpriced.pk, "start": start.isoformat(),
                                             "end": end.isoformat()}).status_code == 204


def test_a_company_voucher_share_is_taken_off(world, api_as, priced):
    day = next_weekday(1, 10).date()
    services.issue_voucher(actor=world.bureau, company=world.company, amount=Decimal("10000.00"),
                           share_percent=Decimal("40"), valid_from=day - dt.timedelta(days=30),
                           valid_until=day + dt.timedelta(days=30))
    start, end = when(1)
    answer = api_as(world.company_user).get("/bookings/estimate", {"instrument_id": priced.pk,
                                                                   "start": start.isoformat(),
                                                                   "end": end.isoformat()}).json()
    assert (Decimal(answer["amount"]), Decimal(answer["voucher_share"]), Decimal(answer["to_pay"])) == (
        Decimal("300.00"), Decimal("120.00"), Decimal("180.00"))


def test_the_booking_form_shows_the_estimate_for_the_selected_time(world, client, priced):
    start, end = when(2)
    client.force_login(world.other_researcher)
    page = client.get("/bookings/new/", {"instrument": priced.pk, "start": start.isoformat(),
                                         "end": end.isoformat()}).content.decode()
    assert 'data-testid="estimate"' in page and "400.00" in page


def test_the_instrument_page_lists_only_the_prices_of_its_charge_mode(world, priced):
    hourly = queries.fee_standard(priced)
    assert "100.00" in hourly and "50.00" not in hourly   # per-sample prices do not apply to a slot booking
    catalog_services.update_policy(actor=world.manager, instrument_id=priced.pk, charge_mode="per_sample")
    priced.refresh_from_db()
    per_sample = queries.fee_standard(type(priced).objects.select_related("policy").get(pk=priced.pk))
    assert "50.00" in per_sample and "100.00" not in per_sample


def test_estimates_follow_the_card_valid_on_the_booking_day(world, api_as, priced):
    start, end = when(1)
    make_card(priced, valid_from=start.date(), rates=[{"user_class": "internal", "unit": "hour", "price": "150.00"}])
    answer = api_as(world.researcher).get("/bookings/estimate", {"instrument_id": priced.pk,
                                                                 "start": start.isoformat(),
                                                                 "end": end.isoformat()}).json()
    assert Decimal(answer["amount"]) == Decimal("150.00") and answer["valid_from"] == start.date().isoformat()
