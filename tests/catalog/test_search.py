"""Finding instruments: through the API and the page, by text, category at any level, place, sharing."""

import json
import re
import time
from decimal import Decimal

import pytest
from django.test import Client

from catalog import queries
from catalog.models import Instrument

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf(world, make_instrument):
    """Five instruments in three categories, two districts, two organizations; one draft."""
    return {
        "sem": make_instrument(name_zh="场发射扫描电镜", name_en="FE-SEM", category_id="010102", district="崂山区",
                               manufacturer="Carl Zeiss", model_number="GeminiSEM 500", original_value="3800000"),
        "tem": make_instrument(name_zh="透射电镜", name_en="TEM", category_id="010101", district="市南区",
                               manufacturer="JEOL", model_number="JEM-2100F", original_value="4200000"),
        "nmr": make_instrument(world.lab_b, name_zh="核磁共振波谱仪", name_en="NMR", category_id="010601",
                               district="崂山区", manufacturer="Bruker", model_number="AVANCE NEO 400",
                               main_functions="有机化合物结构鉴定", original_value="3600000", share_mode="internal"),
        "xrd": make_instrument(world.lab_b, name_zh="X射线衍射仪", name_en="XRD", category_id="010301",
                               district="黄岛区", manufacturer="Bruker", model_number="D8 ADVANCE",
                               original_value="2200000"),
        "draft": make_instrument(name_zh="未发布电镜", category_id="010102", district="崂山区", publish=False),
    }


def _names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["name_zh"] for item in response.json()["items"]}


def test_anyone_may_search_without_logging_in(shelf, api_as):
    assert _names(api_as(None).get("/instruments")) == {"场发射扫描电镜", "透射电镜", "核磁共振波谱仪", "X射线衍射仪"}


@pytest.mark.parametrize("code,expected", [
    ("010000", {"场发射扫描电镜", "透射电镜", "核磁共振波谱仪", "X射线衍射仪"}),  # level 1: analytical instruments
    ("010100", {"场发射扫描电镜", "透射电镜"}),  # level 2: electron optics
    ("010102", {"场发射扫描电镜"}),  # level 3: SEM
    ("010600", {"核磁共振波谱仪"}),
    ("020000", set()),
])
def test_search_by_category_at_any_level(shelf, api_as, code, expected):
    assert _names(api_as(None).get("/instruments", {"category": code})) == expected


@pytest.mark.parametrize("text,expected", [
    ("透射", {"透射电镜"}),  # Chinese name
    ("fe-sem", {"场发射扫描电镜"}),  # English name, any case
    ("AVANCE", {"核磁共振波谱仪"}),  # model
    ("bruker", {"核磁共振波谱仪", "X射线衍射仪"}),  # manufacturer
    ("结构鉴定", {"核磁共振波谱仪"}),  # main functions
    ("bruker D8", {"X射线衍射仪"}),  # every word must match
    ("未发布", set()),  # drafts are not found by outsiders
])
def test_search_by_text(shelf, api_as, text, expected):
    assert _names(api_as(None).get("/instruments", {"q": text})) == expected


def test_search_by_district_organization_and_share_mode(world, shelf, api_as):
    client = api_as(None)
    assert _names(client.get("/instruments", {"district": "崂山区"})) == {"场发射扫描电镜", "核磁共振波谱仪"}
    assert _names(client.get("/instruments", {"district": "崂山区", "category": "010100"})) == {"场发射扫描电镜"}
    assert _names(client.get("/instruments", {"organization": world.org_b.pk})) == {"核磁共振波谱仪", "X射线衍射仪"}
    assert _names(client.get("/instruments", {"share_mode": "internal"})) == {"核磁共振波谱仪"}


def test_drafts_are_found_by_their_own_lab_and_the_bureau_only(world, shelf, api_as):
    assert "未发布电镜" in _names(api_as(world.researcher).get("/instruments", {"q": "未发布"}))
    assert "未发布电镜" in _names(api_as(world.bureau).get("/instruments", {"q": "未发布"}))
    assert _names(api_as(world.other_manager).get("/instruments", {"q": "未发布"})) == set()
    draft = shelf["draft"]
    assert api_as(None).get(f"/instruments/{draft.pk}").status_code == 404
    assert api_as(world.other_manager).get(f"/instruments/{draft.pk}").status_code == 404
    assert api_as(world.researcher).get(f"/instruments/{draft.pk}").status_code == 200


def test_sorting(shelf, api_as):
    client = api_as(None)
    by_value = [i["name_zh"] for i in client.get("/instruments", {"sort": "value"}).json()["items"]]
    assert by_value == ["透射电镜", "场发射扫描电镜", "核磁共振波谱仪", "X射线衍射仪"]
    newest = [i["name_zh"] for i in client.get("/instruments", {"sort": "newest"}).json()["items"]]
    assert newest[0] == "X射线衍射仪"
    assert client.get("/instruments", {"sort": "price"}).status_code == 422


def test_a_wrong_token_is_not_silently_anonymous(shelf):
    response = Client().get("/api/v1/instruments", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_the_instrument_api_shows_rules_hours_and_downtime(world, shelf, api_as):
    body = api_as(None).get(f"/instruments/{shelf['sem'].pk}").json()
    assert body["opening_hours"][0] == {"weekday": 0, "opens": "08:30", "closes": "17:30"}
    assert body["policy"]["mode"] == "slots"
    assert body["time_zone"] == "Asia/Shanghai"
    assert body["url"] == f"/instruments/{shelf['sem'].pk}/"
    assert body["original_value"] == "3800000.00"


def test_pages_are_limited_to_100_and_counted(world, make_instrument, api_as):
    Instrument.objects.bulk_create([
        Instrument(lab=world.lab_a, organization=world.org_a, name_zh=f"批量{i:03d}", asset_number=f"B-{i}",
                   category_id="010102", original_value=Decimal("1000"), listing_state="published")
        for i in range(130)
    ])
    client = api_as(None)
    first = client.get("/instruments", {"page_size": 100}).json()
    assert (first["count"], first["pages"], len(first["items"])) == (130, 2, 100)
    second = client.get("/instruments", {"page_size": 100, "page": 2}).json()
    assert len(second["items"]) == 30
    assert {i["id"] for i in first["items"]}.isdisjoint({i["id"] for i in second["items"]})
    assert client.get("/instruments", {"page_size": 101}).status_code == 422
    assert client.get("/instruments", {"page": 0}).status_code == 422
    assert client.get("/instruments", {"page": 9}).json()["items"] == []
    default = client.get("/instruments").json()
    assert default["page_size"] == 20 and len(default["items"]) == 20


@pytest.mark.parametrize("params", [{}, {"sort": "newest", "page_size": 2, "page": 2}, {"sort": "value"},
                                    {"page": 9}, {"q": "nothing-matches-this"}])
def test_the_search_answers_as_its_schema_renders_each_instrument(world, shelf, api_as, params):
    """The search writes its items itself (``catalog.api._summary``, from the summary's columns only); the
    body is, byte for byte, what ninja renders from the schema and whole instruments: a photo, a draft the
    lab's manager sees, no publication time, decimals, nested lab, organization and category."""
    from catalog.api import InstrumentPageOut
    from instrumentshare.api import api

    Instrument.objects.filter(pk=shelf["tem"].pk).update(photo="instruments/tem.jpg", name_en='TEM "200 kV" <b>')
    response = api_as(world.manager).get("/instruments", params)
    assert response.status_code == 200
    found = queries.search_instruments(world.manager, text=params.get("q", ""), sort=params.get("sort", "name"))
    everything = list(found)
    size, number = params.get("page_size", queries.DEFAULT_PAGE_SIZE), params.get("page", 1)
    page = {"count": len(everything), "page": number, "page_size": size,
            "pages": max(1, -(-len(everything) // size)), "items": everything[(number - 1) * size:number * size]}
    expected = api.renderer.render(None, InstrumentPageOut.model_validate(page).model_dump(), response_status=200)
    assert response.content.decode() == expected
    if not params:   # the first page holds the instrument with a photo and the draft
        items = json.loads(expected)["items"]
        assert any(item["photo_url"] for item in items) and any(item["published_at"] is None for item in items)


@pytest.mark.parametrize("count_in_page", [False, True])
def test_a_page_counts_every_match_by_either_statement(shelf, count_in_page):
    """The count and the page as two statements, or as one with the count as a window: the same pages."""
    def paginate(text="", **kwargs):
        return queries.paginate(queries.search_instruments(None, text=text), count_in_page=count_in_page, **kwargs)

    everything = list(queries.search_instruments(None))
    assert len(everything) == 4
    second = paginate(page=2, page_size=3)
    assert (second.items, second.count, second.pages) == (everything[3:], 4, 2)
    first = paginate(page=1, page_size=3)
    assert (first.items, first.count, first.pages, first.has_next) == (everything[:3], 4, 2, True)
    past = paginate(page=3, page_size=2)
    assert (past.items, past.count, past.pages) == ([], 4, 2)
    empty = paginate(text="nothing-matches-this", page=1)
    assert (empty.items, empty.count, empty.pages) == ([], 0, 1)


def test_the_free_filter_hook_narrows_the_search(world, shelf):
    only_tem = queries.search_instruments(None, free_filter=lambda qs: qs.filter(pk=shelf["tem"].pk))
    assert list(only_tem) == [shelf["tem"]]
    combined = queries.search_instruments(None, category="010102", free_filter=lambda qs: qs.filter(pk=shelf["tem"].pk))
    assert list(combined) == []


def test_search_stays_fast_and_flat_at_ten_thousand_instruments(world, api_as, django_assert_max_num_queries):
    categories = ["010101", "010102", "010601", "010301", "011007"]
    districts = ["崂山区", "市南区", "黄岛区", "即墨区"]
    Instrument.objects.bulk_create([
        Instrument(lab=world.lab_a if i % 2 else world.lab_b, organization=world.org_a if i % 2 else world.org_b,
                   name_zh=f"仪器{i:05d}", name_en=f"Instrument {i}", asset_number=f"P-{i}",
                   category_id=categories[i % 5], district=districts[i % 4], manufacturer=f"Maker {i % 37}",
                   original_value=Decimal(100000 + i), listing_state="published")
        for i in range(10_000)
    ], batch_size=1000)
    client = api_as(None)
    started = time.monotonic()
    with django_assert_max_num_queries(4):
        response = client.get("/instruments", {"q": "maker 1", "category": "010100", "district": "崂山区",
                                               "sort": "value", "page_size": 100})
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.json()["count"] > 0
    assert elapsed < 2.0, f"search took {elapsed:.2f}s"


# --- the search page ---------------------------------------------------------------------------------


def _page_results(response) -> set[str]:
    assert response.status_code == 200
    return set(re.findall(r'<tr data-testid="result">\s*<td><a href="[^"]+">([^<]+)</a>', response.content.decode()))


def test_the_search_page_filters_by_category_selects_and_district(shelf):
    page = Client().get("/instruments/", {"c1": "010000", "c2": "010100", "district": "崂山区"})
    assert _page_results(page) == {"场发射扫描电镜"}
    html = page.content.decode()
    # the third select offers the level-3 categories under the chosen level 2
    assert 'value="010102"' in html and 'value="010601"' not in html


def test_the_search_page_accepts_one_category_code_from_a_link(shelf):
    page = Client().get("/instruments/", {"category": "010102"})
    assert _page_results(page) == {"场发射扫描电镜"}
    html = page.content.decode()
    assert '<option value="010102" selected>' in html


def test_a_level_2_choice_from_another_branch_is_ignored(shelf):
    page = Client().get("/instruments/", {"c1": "010000", "c2": "020100"})
    assert _page_results(page) == {"场发射扫描电镜", "透射电镜", "核磁共振波谱仪", "X射线衍射仪"}


def test_the_search_page_paginates(world, api_as):
    Instrument.objects.bulk_create([
        Instrument(lab=world.lab_a, organization=world.org_a, name_zh=f"批量{i:03d}", asset_number=f"B-{i}",
                   category_id="010102", original_value=Decimal("1000"), listing_state="published")
        for i in range(45)
    ])
    html = Client().get("/instruments/", {"page": 3}).content.decode()
    assert html.count('data-testid="result"') == 5
    assert 'rel="prev"' in html and 'rel="next"' not in html
