"""The figures a close changes are refreshed when the close finishes; the bureau refreshes on demand."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client

from instrumentshare.audit.models import AuditEvent
from oversight import queries, services
from oversight.models import StatRefresh
from oversight.queries import Scope
from tests.oversight.conftest import bill_city, build_city

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_progress_left_over():
    cache.clear()
    yield
    cache.clear()


def test_closing_a_month_refreshes_its_income_and_invoices_at_once(world, django_capture_on_commit_callbacks):
    city = build_city(world)
    assert not StatRefresh.objects.filter(year=2025).exists()
    with django_capture_on_commit_callbacks(execute=True):
        bill_city(world, city)  # closes March and April 2025; nobody runs a refresh by hand
    [row] = queries.summarize(Scope(everything=True), year=2025, by="city")
    assert (row.income, row.invoices) == (Decimal("1500.00"), 4)
    assert queries.refresh_progress(2025)["state"] == "done"


def test_the_bureau_refreshes_on_demand_and_sees_progress(world, django_capture_on_commit_callbacks):
    build_city(world)
    client = Client()
    client.force_login(world.bureau)
    page = client.get("/oversight/?year=2025").content.decode()
    assert 'data-testid="refresh-now"' in page and "hx-trigger" not in page  # nothing under way: no polling

    services.request_refresh(actor=world.bureau, years=[2025], now=dt.datetime(2026, 12, 2, 1, tzinfo=dt.UTC))
    queued = client.get("/oversight/?year=2025").content.decode()
    assert "hx-trigger=\"every 2s\"" in queued and 'data-testid="refresh-state"' in queued
    assert client.get("/api/v1/oversight/refreshes/progress?year=2025").json()["state"] == "queued"
    assert AuditEvent.objects.filter(action="statistics.refresh_requested").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/oversight/refresh", {"year": "2025"})
    assert response.status_code == 302 and response["Location"] == "/oversight/?year=2025"
    state = client.get("/api/v1/oversight/refreshes/progress?year=2025").json()
    assert state["state"] == "done" and state["done"] == state["total"] == 3 and state["refreshed_at"]
    polled = client.get("/oversight/freshness?year=2025", HTTP_HX_REQUEST="true")
    assert polled["HX-Refresh"] == "true"  # finished: the page reloads with the new figures


def test_only_the_bureau_may_refresh(world):
    client = Client()
    client.force_login(world.manager)
    assert client.post("/oversight/refresh", {"year": "2025"}).status_code == 404
    answer = client.post("/api/v1/oversight/refreshes", {"year": 2025}, content_type="application/json")
    assert answer.status_code == 403, answer.content
    assert not AuditEvent.objects.filter(action="statistics.refresh_requested").exists()
    page = client.get("/oversight/").content.decode()
    assert 'data-testid="refresh-now"' not in page


def test_a_refresh_request_with_a_bad_year_is_refused_with_a_reason(world):
    client = Client()
    client.force_login(world.bureau)
    answer = client.post("/api/v1/oversight/refreshes", {"year": 99999}, content_type="application/json")
    assert answer.status_code == 422 and "year" in answer.content.decode()
    assert client.post("/oversight/refresh", {"year": "x"}).status_code == 302


def test_a_refresh_prepares_the_city_dashboard_so_the_first_request_computes_nothing(world):
    """The refresh fills the city-wide figures (each language) and the compliance panel; the bureau's
    first request after it reads the summary tables not once. A lab manager's narrower dashboard is
    still computed on its first request, from the same refresh."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from oversight.models import InstrumentMonthStat, InstrumentYearStat

    build_city(world)
    services.refresh_statistics(year=2025)
    summary_tables = (InstrumentMonthStat._meta.db_table, InstrumentYearStat._meta.db_table)

    def summary_reads(user, language):
        client = Client()
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries_run:
            page = client.get("/oversight/?year=2025", HTTP_ACCEPT_LANGUAGE=language)
        assert page.status_code == 200
        return sum(any(table in query["sql"] for table in summary_tables) for query in queries_run.captured_queries)

    assert summary_reads(world.bureau, "zh-hans") == 0
    assert summary_reads(world.bureau, "en") == 0
    assert summary_reads(world.manager, "zh-hans") > 0

    cache.clear()  # the cache lost (a restart of Redis): the page computes the figures itself
    assert summary_reads(world.bureau, "zh-hans") > 0
