"""Per-user budgets for exports (and booking creation on the page): 429 with Retry-After beyond them,
JSON on the API, a readable page elsewhere; one budget per user across the API and the pages."""

import pytest
from django.test import Client
from ninja.constants import NOT_SET

from instrumentshare.api import api
from tests.conftest import requires_redis

pytestmark = pytest.mark.django_db

# Every file the API produces. A new download route must be added here, and must be throttled
# (test_every_api_download_route_is_throttled finds them by their lack of a JSON response schema).
API_EXPORTS = [
    "/instruments/export?lab=lab-a",
    "/instruments/export?lab=lab-a&format=xlsx",
    "/billing/export?period=2026-10",
    "/billing/invoices/999999/pdf",
    "/oversight/exports/999999",
    "/me/export",
]
PAGE_EXPORTS = [
    "/instruments/export/lab-a.csv",
    "/instruments/compliance/export.xlsx",
    "/billing/finance/export?period=2026-10&format=csv",
    "/billing/invoices/999999/pdf",
    "/oversight/charts/utilization.csv",
    "/oversight/statistics.csv",
    "/oversight/evaluation.xlsx",
    "/oversight/exports/999999.json",
]


def page_client(user) -> Client:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(user)
    return client


def test_api_exports_beyond_the_budget_get_429_with_retry_after_and_others_keep_theirs(world, api_as, settings):
    settings.RATE_LIMIT_EXPORTS = "2/m"
    manager = api_as(world.manager)
    statuses = [manager.get("/instruments/export", {"lab": "lab-a"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = manager.get("/instruments/export", {"lab": "lab-a", "format": "xlsx"})
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    body = limited.json()
    assert body["code"] == "rate_limited" and body["retry_after"] == int(limited["Retry-After"])
    assert "retry in" in body["detail"]
    # One budget for every export of that user, whichever route...
    assert manager.get("/me/export").status_code == 429
    # ...and whichever token: it is the user's budget, not the token's.
    assert api_as(world.manager).get("/me/export").status_code == 429
    # Other users are not affected.
    assert api_as(world.other_manager).get("/instruments/export", {"lab": "lab-b"}).status_code == 200
    assert api_as(world.researcher).get("/me/export").status_code == 200


def test_page_exports_beyond_the_budget_get_a_readable_429_page_with_retry_after(world, settings):
    settings.RATE_LIMIT_EXPORTS = "2/m"
    client = page_client(world.manager)
    statuses = [client.get("/instruments/export/lab-a.csv").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.get("/instruments/export/lab-a.xlsx")
    assert limited.status_code == 429
    assert limited["Content-Type"].startswith("text/html")
    assert 1 <= int(limited["Retry-After"]) <= 60
    text = limited.content.decode()
    assert 'data-testid="rate-limited"' in text
    assert f"Try again in {limited['Retry-After']} seconds" in text
    assert page_client(world.bureau).get("/instruments/export/lab-a.csv").status_code == 200


def test_the_api_and_the_pages_draw_on_one_budget(world, api_as, settings):
    settings.RATE_LIMIT_EXPORTS = "2/m"
    api = api_as(world.manager)
    assert api.get("/instruments/export", {"lab": "lab-a"}).status_code == 200
    assert page_client(world.manager).get("/instruments/export/lab-a.csv").status_code == 200
    assert api.get("/instruments/export", {"lab": "lab-a"}).status_code == 429
    assert page_client(world.manager).get("/instruments/export/lab-a.csv").status_code == 429


@pytest.mark.parametrize("path", API_EXPORTS)
def test_every_api_export_counts_against_the_budget(world, api_as, settings, path):
    settings.RATE_LIMIT_EXPORTS = "1/m"
    user = {"/billing": world.finance, "/oversight": world.bureau}.get(path[:path.find("/", 1)], world.manager)
    client = api_as(user)
    first = client.get(path)
    assert first.status_code != 429
    second = client.get(path)
    assert second.status_code == 429 and int(second["Retry-After"]) >= 1
    assert second.json()["code"] == "rate_limited"


@pytest.mark.parametrize("path", PAGE_EXPORTS)
def test_every_page_export_counts_against_the_budget(world, settings, path):
    settings.RATE_LIMIT_EXPORTS = "1/m"
    user = {"/billing": world.finance}.get(path[:path.find("/", 1)], world.bureau)
    client = page_client(user)
    assert client.get(path).status_code != 429
    second = client.get(path)
    assert second.status_code == 429 and int(second["Retry-After"]) >= 1


def test_every_api_download_route_is_throttled():
    """A route that answers with a file (no JSON response schema) must carry the exports budget."""
    downloads, unthrottled = [], []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                schemas = operation.response_models.values()
                if "GET" not in operation.methods or any(schema is not NOT_SET for schema in schemas):
                    continue
                downloads.append(prefix + path)
                settings_names = [getattr(t, "setting_name", None) for t in operation.throttle_objects]
                if "RATE_LIMIT_EXPORTS" not in settings_names:
                    unthrottled.append(prefix + path)
    assert len(downloads) >= 4
    assert unthrottled == []


def test_an_anonymous_visitor_is_sent_to_log_in_before_any_budget_is_counted(world, settings):
    settings.RATE_LIMIT_EXPORTS = "1/m"
    for _ in range(3):
        response = Client().get("/instruments/export/lab-a.csv")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_booking_on_the_page_shares_the_booking_budget_of_the_api(world, api_as, settings, instrument):
    settings.RATE_LIMIT_BOOKINGS = "2/m"
    data = {"instrument_id": 999999, "start": "2026-12-01T09:00:00+08:00", "end": "2026-12-01T10:00:00+08:00",
            "purpose": "x"}
    assert api_as(world.researcher).post("/bookings", data).status_code == 404
    client = page_client(world.researcher)
    page = f"/bookings/new/?instrument={instrument.pk}"
    assert client.get(page).status_code == 200  # looking at the form costs nothing
    assert client.post(page, {"start": "", "end": "", "purpose": ""}).status_code == 200  # a form error
    limited = client.post(page, {"start": "", "end": "", "purpose": ""})
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert client.get(page).status_code == 200
    assert api_as(world.researcher).post("/bookings", data).status_code == 429
    assert api_as(world.other_researcher).post("/bookings", data).status_code == 404


@requires_redis
def test_with_redis_the_window_is_one_sorted_set_that_a_refused_request_does_not_fill(world, api_as, settings):
    """On Redis the budget is kept as a sorted set of request times (one atomic round trip per request);
    a refused request is taken out again, so waiting out the window is enough."""
    from django.core.cache import caches

    from instrumentshare.core.cache import RedisCache

    backend = caches["default"]
    assert isinstance(backend, RedisCache)
    settings.RATE_LIMIT_EXPORTS = "2/m"
    client = api_as(world.manager)
    statuses = [client.get("/instruments/export", {"lab": "lab-a"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    pipe, key = backend.pipeline(f"throttle_rate_limit_exports_user-{world.manager.pk}:window")
    pipe.zcard(key)
    pipe.ttl(key)
    members, ttl = pipe.execute()
    assert members == 2 and 0 < ttl <= 61
