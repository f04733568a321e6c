"""The science bureau opens the oversight dashboard in a real browser: every chart is drawn by the vendored
Chart.js with data, each beside its table, and the non-compliant instruments of the compliance report are listed.

Set OVERSIGHT_SCREENSHOT=/tmp/oversight.png to keep a picture of the dashboard.
"""

import os
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from oversight import services
from tests.bookings.conftest import make_instrument
from tests.browser.conftest import follow_nav
from tests.oversight.conftest import YEAR, bill_city, build_city

pytestmark = pytest.mark.browser
CHARTS = ("utilization", "monthly", "share", "top", "idle", "districts")


def test_the_bureau_sees_the_charts_drawn_and_the_non_compliant_instruments(world, page, login):
    city = build_city(world)
    bill_city(world, city)
    # Publicly funded, above the listing threshold, never published: the compliance report flags it.
    make_instrument(world, name="未上线质谱", asset_number="OV-DRAFT", original_value=Decimal("900000"),
                    publish=False)
    services.refresh_statistics(year=YEAR)

    login("bureau")
    follow_nav(page, "oversight:dashboard")
    page.wait_for_url("**/oversight/")
    page.select_option("select[name=year]", str(YEAR))
    page.wait_for_url(re.compile(rf"/oversight/\?year={YEAR}"))

    for key in CHARTS:
        canvas = page.locator(f"canvas[data-chart='{key}']")
        expect(canvas).to_have_attribute("data-drawn", "true")
        drawn = canvas.evaluate("""canvas => {
            const chart = Chart.getChart(canvas);
            const values = chart.data.datasets.flatMap(d => d.data);
            return {points: values.length, sum: values.reduce((a, b) => a + b, 0), labels: chart.data.labels.length,
                    width: canvas.width, height: canvas.height};
        }""")
        assert drawn["points"] > 0 and drawn["sum"] > 0 and drawn["labels"] > 0, (key, drawn)
        assert drawn["width"] > 0 and drawn["height"] > 0, (key, drawn)
        expect(page.locator(f"[data-testid=table-{key}] tbody tr").first).to_be_visible()
        expect(page.locator(f"[data-testid=csv-{key}]")).to_have_attribute(
            "href", re.compile(rf"^/oversight/charts/{key}\.csv\?year={YEAR}"))

    monthly = page.locator("canvas[data-chart='monthly']").evaluate(
        "canvas => Chart.getChart(canvas).data.datasets[0].data")
    assert monthly[2] == 12.5  # March: 750 effective minutes across the three instruments
    top = page.locator("canvas[data-chart='top']").evaluate("canvas => Chart.getChart(canvas).data.labels")
    assert top == ["核磁", "电镜", "质谱"]
    expect(page.locator("[data-testid=kpi-share-rate]")).to_have_text("35.5%")

    flagged = page.locator("[data-testid=noncompliant] tr[data-asset='OV-DRAFT']")
    expect(flagged).to_contain_text("未上线质谱")
    expect(flagged).to_contain_text("Not listed")
    if os.environ.get("OVERSIGHT_SCREENSHOT"):
        page.screenshot(path=os.environ["OVERSIGHT_SCREENSHOT"], full_page=True)
