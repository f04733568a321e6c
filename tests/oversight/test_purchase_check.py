"""The duplicate-purchase check: the city's instruments of the category with their yearly hours, the
category saturated from the configured hours, only for purchases from the configured value."""

from decimal import Decimal

import pytest
from django.test import Client, override_settings

from oversight import services
from oversight.models import PurchaseCheck
from tests.oversight.conftest import YEAR

pytestmark = pytest.mark.django_db


@pytest.fixture
def refreshed(world, city):
    services.refresh_statistics(year=YEAR)
    return city


def test_the_category_is_not_saturated_when_its_instruments_run_little(world, refreshed):
    result = services.check_purchase(actor=world.manager, lab_id=world.lab_a.pk, category_code="010102",
                                     value="800000", year=YEAR)
    assert result.required and not result.saturated
    assert result.counted == 3 and result.average_hours == Decimal("5.2")  # (6.00 + 6.50 + 3.00) / 3
    assert [row["hours"] for row in result.rows] == [Decimal("6.50"), Decimal("6.00"), Decimal("3.00")]
    kept = PurchaseCheck.objects.get()
    assert (kept.lab, kept.category_id, kept.saturated, kept.average_hours) == (
        world.lab_a, "010102", False, Decimal("5.2"))


def test_the_category_is_saturated_from_the_configured_hours(world, refreshed):
    with override_settings(OVERSIGHT_SATURATION_HOURS=5):
        result = services.check_purchase(actor=world.manager, lab_id=world.lab_a.pk, category_code="010102",
                                         value="800000", year=YEAR)
    assert result.saturated


def test_below_the_configured_value_no_check_is_needed_or_kept(world, refreshed):
    result = services.check_purchase(actor=world.manager, lab_id=world.lab_a.pk, category_code="010102",
                                     value="499999.99", year=YEAR)
    assert not result.required and not PurchaseCheck.objects.exists()
    with override_settings(OVERSIGHT_PURCHASE_CHECK_VALUE=Decimal("100000")):
        assert services.check_purchase(actor=world.manager, lab_id=world.lab_a.pk, category_code="010102",
                                       value="499999.99", year=YEAR).required


def test_a_lab_checks_on_the_page_and_another_lab_or_a_researcher_cannot(world, refreshed):
    client = Client()
    client.force_login(world.manager)
    response = client.post("/oversight/purchase-check/", {"lab": world.lab_a.pk, "category": "010102",
                                                          "value": "900000", "year": YEAR})
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-testid="verdict"' in text and "5.2" in text and "质谱" in text
    assert PurchaseCheck.objects.count() == 1
    refused = client.post("/oversight/purchase-check/", {"lab": world.lab_b.pk, "category": "010102",
                                                         "value": "900000"})
    assert refused.status_code == 200 and PurchaseCheck.objects.count() == 1  # not their lab: the form says no
    researcher = Client()
    researcher.force_login(world.researcher)
    assert researcher.get("/oversight/purchase-check/").status_code == 404


def test_the_api_checks_and_keeps_a_check_for_the_managers_own_lab_only(world, refreshed, api_as):
    manager = api_as(world.manager)
    looked = manager.get("/oversight/purchase-check", {"category": "010102", "value": "900000", "year": YEAR})
    assert looked.status_code == 200 and looked.json()["saturated"] is False and looked.json()["check_id"] is None
    kept = manager.post("/oversight/purchase-checks", {"lab": world.lab_a.pk, "category": "010102",
                                                       "value": "900000", "year": YEAR})
    assert kept.status_code == 201 and kept.json()["check_id"] == PurchaseCheck.objects.get().pk
    other_lab = manager.post("/oversight/purchase-checks", {"lab": world.lab_b.pk, "category": "010102",
                                                            "value": "900000"})
    assert other_lab.status_code == 404
    assert api_as(world.researcher).get("/oversight/purchase-check",
                                        {"category": "010102", "value": "900000"}).status_code == 404
    assert manager.get("/oversight/purchase-check", {"category": "999999", "value": "900000"}).status_code == 422
