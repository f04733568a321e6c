"""Who sees which statistics: the bureau everything, a finance officer their organization, a lab manager
their lab, anyone else nothing (404); anonymous callers get 401 from the API and the login page from pages."""

import datetime as dt

import pytest
from django.test import Client

from oversight import services
from tests.oversight.conftest import YEAR

pytestmark = pytest.mark.django_db


@pytest.fixture
def refreshed(world, city):
    services.refresh_statistics(year=YEAR)
    return city


def keys(response) -> set:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == len(body["items"])
    return {row["key"] for row in body["items"]}


def test_the_bureau_sees_every_instrument_and_organization(world, refreshed, api_as):
    bureau = api_as(world.bureau)
    by_instrument = keys(bureau.get("/oversight/statistics", {"year": YEAR, "by": "instrument"}))
    assert by_instrument == {str(i.pk) for i in (refreshed.sem, refreshed.nmr, refreshed.ms)}
    assert keys(bureau.get("/oversight/statistics", {"year": YEAR})) == {str(world.org_a.pk), str(world.org_b.pk)}
    first = bureau.get("/oversight/statistics", {"year": YEAR, "by": "instrument", "limit": 1}).json()
    assert first["count"] == 3 and [row["label"] for row in first["items"]] == ["核磁"]  # the busiest first
    one = bureau.get(f"/oversight/instruments/{refreshed.ms.pk}/statistics", {"year": YEAR}).json()
    assert (one["effective_hours"], one["share_rate"]) == ("3.00", "0.6667")


def test_a_lab_manager_sees_only_their_lab(world, refreshed, api_as):
    manager = api_as(world.manager)
    assert keys(manager.get("/oversight/statistics", {"year": YEAR, "by": "instrument"})) == {
        str(refreshed.sem.pk), str(refreshed.nmr.pk)}
    assert keys(manager.get("/oversight/statistics", {"year": YEAR, "by": "lab"})) == {str(world.lab_a.pk)}
    assert manager.get(f"/oversight/labs/{world.lab_b.pk}/statistics", {"year": YEAR}).status_code == 404
    assert manager.get(f"/oversight/instruments/{refreshed.ms.pk}/statistics").status_code == 404
    assert manager.get("/oversight/statistics", {"year": YEAR, "lab": world.lab_b.pk}).status_code == 404
    month = manager.get(f"/oversight/labs/{world.lab_a.pk}/statistics", {"year": YEAR, "month": 3}).json()
    assert month["effective_hours"] == "9.50"  # sem 270 + nmr 300 minutes in March


def test_another_organizations_finance_officer_sees_nothing_of_organization_a(world, refreshed, api_as):
    other = api_as(world.other_finance)
    assert keys(other.get("/oversight/statistics", {"year": YEAR})) == {str(world.org_b.pk)}
    assert keys(other.get("/oversight/statistics", {"year": YEAR, "by": "instrument"})) == {str(refreshed.ms.pk)}
    assert other.get(f"/oversight/organizations/{world.org_a.pk}/statistics").status_code == 404
    assert other.get(f"/oversight/instruments/{refreshed.sem.pk}/statistics").status_code == 404
    assert other.get("/oversight/statistics", {"year": YEAR, "organization": world.org_a.pk}).status_code == 404
    top = other.get("/oversight/charts/top", {"year": YEAR}).json()
    assert top["labels"] == ["质谱"]
    districts = other.get("/oversight/charts/districts", {"year": YEAR}).json()
    assert districts["labels"] == ["崂山区"]  # the researcher of A using B's instrument


def test_people_without_an_oversight_role_get_404_and_anonymous_callers_401(world, refreshed, api_as):
    for user in (world.researcher, world.company_user):
        client = api_as(user)
        assert client.get("/oversight/statistics", {"year": YEAR}).status_code == 404
        assert client.get(f"/oversight/instruments/{refreshed.sem.pk}/statistics").status_code == 404
        assert client.get("/oversight/evaluation").status_code == 404
        assert client.get("/oversight/exports").status_code == 404
    bureau = api_as(world.bureau)
    assert bureau.get("/oversight/statistics", {"year": 99999}).status_code == 422
    assert bureau.get(f"/oversight/labs/{world.lab_a.pk}/statistics", {"month": 13}).status_code == 422
    anonymous = api_as(None)
    assert anonymous.get("/oversight/statistics").status_code == 401
    assert anonymous.get("/oversight/charts/monthly").status_code == 401


def test_pages_are_scoped_the_same_way(world, refreshed):
    anonymous = Client()
    response = anonymous.get("/oversight/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    researcher = Client()
    researcher.force_login(world.researcher)
    assert researcher.get("/oversight/").status_code == 404
    assert researcher.get("/oversight/statistics/").status_code == 404
    other = Client()
    other.force_login(world.other_finance)
    page = other.get("/oversight/", {"year": YEAR})
    assert page.status_code == 200
    text = page.content.decode()
    assert "质谱" in text and "电镜" not in text and "核磁" not in text
    assert other.get("/oversight/", {"year": YEAR, "organization": world.org_a.pk}).status_code == 404
    assert other.get("/oversight/", {"year": YEAR, "lab": world.lab_a.pk}).status_code == 404
    csv_text = other.get("/oversight/statistics.csv", {"year": YEAR, "by": "instrument"}).content.decode("utf-8-sig")
    assert "质谱" in csv_text and "电镜" not in csv_text
    manager = Client()
    manager.force_login(world.manager)
    manager_page = manager.get("/oversight/statistics/", {"year": YEAR, "by": "instrument"}).content.decode()
    assert "电镜" in manager_page and "质谱" not in manager_page


def test_the_bureau_dashboard_has_every_chart_with_its_table_and_csv(world, refreshed):
    client = Client()
    client.force_login(world.bureau)
    page = client.get("/oversight/", {"year": YEAR})
    assert page.status_code == 200
    text = page.content.decode()
    for key in ("utilization", "monthly", "share", "top", "idle", "districts"):
        assert f'data-chart="{key}"' in text and f'id="chart-data-{key}"' in text
        assert f'data-testid="table-{key}"' in text
        csv = client.get(f"/oversight/charts/{key}.csv", {"year": YEAR})
        assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    assert "vendor/chart.js/chart.umd.js" in text
    assert client.get("/oversight/charts/nothing.csv").status_code == 404
    assert client.get("/oversight/", {"year": 99999}).status_code == 404
    assert client.get("/oversight/", {"organization": "9" * 30}).status_code == 200  # not a number: ignored


def test_csv_cells_that_look_like_formulas_are_quoted(world, refreshed):
    from catalog.models import Instrument

    Instrument.objects.filter(pk=refreshed.sem.pk).update(name_zh="=HYPERLINK(\"http://evil\")")
    client = Client()
    client.force_login(world.bureau)
    content = client.get("/oversight/charts/top.csv", {"year": YEAR}).content.decode("utf-8-sig")
    assert "'=HYPERLINK" in content
    assert "\n=HYPERLINK" not in content and ",=HYPERLINK" not in content
    header = content.splitlines()[0]
    assert "(%)" in header  # utilization written as a percentage, and said so


def test_the_dashboard_is_cached_under_its_refresh_and_its_compliance_panel_is_never_stale(world, refreshed):
    from django.db.models import F
    from django.utils import timezone

    from oversight.models import InstrumentYearStat, StatRefresh

    client = Client()
    client.force_login(world.bureau)
    sessions = client.get("/oversight/", {"year": YEAR}).context["totals"].sessions
    stats = InstrumentYearStat.objects.filter(year=YEAR)
    rows = stats.count()
    stats.update(sessions=F("sessions") + 100)
    # The summary tables change only when a refresh runs: until one is recorded the cached figures stand...
    assert client.get("/oversight/", {"year": YEAR}).context["totals"].sessions == sessions
    StatRefresh.objects.filter(year=YEAR).update(refreshed_at=timezone.now() + dt.timedelta(seconds=1))
    # ...and a new refresh is a new key.
    assert client.get("/oversight/", {"year": YEAR}).context["totals"].sessions == sessions + 100 * rows

    instrument = refreshed.ms
    instrument.funded_central = instrument.funded_local = False
    instrument.save()
    before = client.get("/oversight/", {"year": YEAR}).context["compliance_count"]
    instrument.funded_central, instrument.original_value = True, 10**7
    instrument.share_mode = "internal"  # mandatory and not shared with outsiders: flagged at once
    instrument.save()
    page = client.get("/oversight/", {"year": YEAR}).context
    assert page["compliance_count"] == before + 1
    assert instrument.pk in {row.instrument.pk for row in page["compliance_rows"]}
