import datetime as dt
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from catalog import services
from catalog.reference import load_categories

pytestmark = pytest.mark.browser


def _instrument(world, lab, *, name, category, district):
    manager = world.manager if lab == world.lab_a else world.other_manager
    instrument = services.create_instrument(
        actor=manager, lab=lab, name_zh=name, asset_number=name, category_id=category, district=district,
        original_value=Decimal("900000"), funded_central=True, manufacturer="Carl Zeiss", model_number="Sigma 300",
        purchase_date=dt.date(2024, 3, 4), opening_hours=[(day, 510, 1050) for day in range(5)],
    )
    services.publish(actor=manager, instrument_id=instrument.pk)
    return instrument


def _choose(page, select: str, value: str) -> None:
    """Pick an option; the form re-renders through htmx, so wait until the new form is in place.

    htmx drops a change made while the form's previous request is still in flight, so the next choice
    must wait for the swap, not merely for the response.
    """
    with page.expect_response(lambda response: "/instruments/" in response.url):
        page.select_option(select, value)
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    expect(page.locator(select)).to_have_value(value)


def test_find_an_instrument_by_category_and_district_and_open_its_page(world, page):
    load_categories()  # an earlier transactional test's flush may have emptied the reference table
    _instrument(world, world.lab_a, name="崂山扫描电镜", category="010102", district="崂山区")
    _instrument(world, world.lab_b, name="市南扫描电镜", category="010102", district="市南区")
    _instrument(world, world.lab_b, name="崂山核磁共振", category="010601", district="崂山区")

    page.goto("/instruments/")
    expect(page.locator("[data-testid=result]")).to_have_count(3)
    _choose(page, "#id_c1", "010000")
    _choose(page, "#id_c2", "010100")
    _choose(page, "#id_c3", "010102")
    expect(page.locator("[data-testid=result]")).to_have_count(2)
    _choose(page, "#id_district", "崂山区")
    results = page.locator("[data-testid=result]")
    expect(results).to_have_count(1)
    assert "c3=010102" in page.url and "district=" in page.url  # the filters are in the address, to share

    results.get_by_role("link", name="崂山扫描电镜").click()
    expect(page.locator("[data-testid=instrument-name]")).to_have_text("崂山扫描电镜")
    expect(page.locator("[data-testid=opening-hours]")).to_contain_text("08:30-17:30")
