"""The OpenAPI document says what the API does, and the API does what the document says: numbers are
not booleans, dates are text, public routes take credentials optionally, every free-text string
carries the string rule, and 401 is documented wherever it can be answered."""

import re

import pytest
from django.test import Client

from instrumentshare.core.input_rules import NO_CONTROL_CHARACTERS
from tests.bookings.conftest import make_instrument

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec():
    return Client().get("/api/v1/openapi.json").json()


def test_a_boolean_where_a_number_is_expected_is_a_422_naming_the_field(world, api_as):
    client = api_as(world.researcher)
    response = client.post("/me/feeds", {"scope": "mine", "lab_id": False})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.payload.lab_id"
    listed = api_as(world.manager).post("/submissions/receive", {"request_ids": [True]})
    assert listed.status_code == 422
    assert "number is expected" in listed.json()["detail"]


def test_a_number_where_a_date_is_expected_is_a_422_not_seconds_since_1970(world, api_as):
    instrument = make_instrument(world)
    response = api_as(world.manager).post(f"/instruments/{instrument.pk}/opening-exceptions",
                                          {"date": 0, "closed": True, "reason": "holiday"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.payload.date"
    assert "ISO 8601" in response.json()["detail"]


def test_public_routes_take_credentials_optionally_and_refuse_a_bad_token(world, spec):
    instrument = make_instrument(world)
    for path in ("/api/v1/instruments", "/api/v1/categories", "/api/v1/instruments/{instrument_id}",
                 "/api/v1/instruments/{instrument_id}/availability",
                 "/api/v1/billing/instruments/{instrument_id}/rate-cards"):
        assert spec["paths"][path]["get"]["security"][0] == {}, path
        url = path.replace("{instrument_id}", str(instrument.pk))
        if url.endswith("/availability"):
            url += "?start=2026-12-07T00:00:00%2B08:00&end=2026-12-14T00:00:00%2B08:00"
        assert Client().get(url).status_code == 200, url
        refused = Client().get(url, headers={"Authorization": "Bearer ist_not-a-token"})
        assert refused.status_code == 401, url
    # A route that needs a caller does not say its credentials are optional.
    assert {} not in spec["paths"]["/api/v1/bookings"]["post"]["security"]


def test_every_operation_documents_401_and_free_text_carries_the_string_rule(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], f"{method.upper()} {path}"
    purpose = spec["components"]["schemas"]["BookingIn"]["properties"]["purpose"]
    assert purpose["pattern"] == NO_CONTROL_CHARACTERS
    assert re.match(NO_CONTROL_CHARACTERS, "two lines\nand a\ttab")
    assert not re.match(NO_CONTROL_CHARACTERS, "nul\x00")


def test_a_rule_of_the_database_is_refused_in_words_not_by_its_constraint_name(world, api_as):
    instrument = make_instrument(world)
    response = api_as(world.manager).put(f"/instruments/{instrument.pk}/opening-hours",
                                         {"rules": [{"weekday": 0, "opens": "9:00", "closes": "9:00"}]})
    assert response.status_code == 422
    assert response.json()["detail"] in ("Opening hours close after they open.", "开放时段的结束时间须晚于开始时间。")


def test_money_is_decimal_text_or_a_whole_number_and_the_document_says_exactly_which(world, api_as, spec):
    """A JSON fraction is a binary float (12.1 is not 12.10), so an amount travels as text or a whole
    number; text that is not a plain decimal of the field's size is a 422 naming the field. The
    document states the same rule as the pattern and bounds schemathesis generates from."""
    from decimal import Decimal

    from billing.models import Voucher

    client = api_as(world.bureau)
    base = {"company_id": world.company.pk, "share_percent": "50", "valid_from": "2026-01-01",
            "valid_until": "2026-12-31"}
    refusals = {12.5: "as text", "1e3": "decimal number", " 12": "decimal number", "12.345": "decimal number",
                "0": "decimal number", "123456789012": "decimal number", True: "not true or false"}
    for amount, words in refusals.items():
        response = client.post("/billing/vouchers", {**base, "amount": amount})
        assert response.status_code == 422, (amount, response.content)
        assert response.json()["errors"][0]["field"] == "body.payload.amount", amount
        assert words in response.json()["detail"], (amount, response.json()["detail"])
    assert not Voucher.objects.exists()
    for amount, stored in (("12.5", Decimal("12.50")), (1000, Decimal("1000.00")), (1000.0, Decimal("1000.00"))):
        response = client.post("/billing/vouchers", {**base, "amount": amount})
        assert response.status_code == 201, (amount, response.content)
        assert Voucher.objects.get(pk=response.json()["id"]).amount == stored

    schema = spec["components"]["schemas"]["VoucherIn"]["properties"]["amount"]
    integer, text = schema["anyOf"]
    assert integer == {"type": "integer", "minimum": 1, "maximum": 99_999_999_999}
    for value in ("0.01", "12.5", "12.50", "99999999999.99", "100"):
        assert re.fullmatch(text["pattern"], value), value
    for value in ("0", "0.00", "1e3", "12.345", "-1", "012", "123456789012"):
        assert not re.fullmatch(text["pattern"], value), value
    assert not {"max_digits", "decimal_places", "gt"} & schema.keys()


@pytest.mark.parametrize("kind", ["Money", "PositiveMoney", "SignedMoney", "AssetValue", "Percent",
                                  "PositivePercent", "PositiveAssetValue"])
def test_each_decimal_type_accepts_exactly_what_its_pattern_and_bounds_state(kind):
    """One rule, two statements (the pattern and bounds in the document, pydantic's parsing in the
    server): generated text matching the pattern is accepted, and text pydantic would accept but the
    pattern does not (a sign, an exponent, spaces, a third place) is refused."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pydantic import TypeAdapter, ValidationError

    from instrumentshare.core import schemas

    decimal_type = getattr(schemas, kind)
    adapter = TypeAdapter(decimal_type)
    document = adapter.json_schema()
    integer, text = document["anyOf"]
    pattern = text["pattern"]

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(st.one_of(st.from_regex(pattern, fullmatch=True),
                     st.integers(integer["minimum"], integer["maximum"]),
                     st.text("0123456789.-+e ", max_size=16),
                     st.integers(-10 ** 14, 10 ** 14)))
    def check(value):
        documented = (re.fullmatch(pattern, value) is not None if isinstance(value, str)
                      else integer["minimum"] <= value <= integer["maximum"])
        try:
            adapter.validate_python(value)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == documented, (value, pattern)

    check()
