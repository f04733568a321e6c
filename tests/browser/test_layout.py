"""Pages that fit: at a laptop's 1366×900 and a phone's 390×844, in Chinese and English, as each role,
the page never scrolls sideways, no navigation label wraps inside a word, and every entry is reachable
(in a menu when they do not fit on one line)."""

import pytest

from tests.browser.conftest import SIZES

pytestmark = pytest.mark.browser

ROLES = [None, "researcher", "manager", "finance", "bureau"]
PAGES = ["/", "/instruments/", "/bookings/mine/", "/billing/mine/", "/oversight/"]

MEASURE = """() => {
  const labels = [...document.querySelectorAll('header nav a, header nav button')].filter(e => e.offsetParent);
  const wrapped = labels.filter(e => {
    const style = getComputedStyle(e);
    const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.5;
    return e.getClientRects().length > 1 || e.getBoundingClientRect().height > 2.2 * line;
  }).map(e => e.textContent.trim());
  return {scroll: document.documentElement.scrollWidth, width: window.innerWidth, wrapped};
}"""


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_role_fits_the_screen_and_no_label_wraps(world, sized, size, language):
    problems = []
    for role in ROLES:
        page = sized(role, size, language)
        for path in PAGES:
            response = page.goto(path)
            if response.status != 200:
                continue  # a page this role may not see (404) is not a layout question
            figures = page.evaluate(MEASURE)
            if figures["scroll"] > figures["width"] or figures["wrapped"]:
                problems.append((role, path, figures))
        entries = page.locator("[data-testid=nav] a")
        toggle = page.locator("[data-testid=nav-toggle]")
        if toggle.is_visible():
            toggle.click()
        hidden = [entries.nth(i).get_attribute("data-nav") for i in range(entries.count())
                  if not entries.nth(i).is_visible()]
        if hidden:
            problems.append((role, "menu", hidden))
    assert problems == []


def test_the_menu_folds_on_a_phone_and_opens_on_a_tap(world, sized):
    page = sized("manager", "phone", "zh-hans")
    page.goto("/")
    toggle = page.locator("[data-testid=nav-toggle]")
    assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    assert not page.locator("[data-testid=nav]").is_visible()
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.locator("[data-testid=nav] a").first.is_visible()
    wide = sized("researcher", "laptop", "zh-hans")
    wide.goto("/")
    assert not wide.locator("[data-testid=nav-toggle]").is_visible()  # everything fits: no menu button


CARD = """(selector) => [...document.querySelectorAll(selector)].map(row => ({
  display: getComputedStyle(row).display,
  labels: [...row.querySelectorAll('td[data-label]')].map(td => getComputedStyle(td, '::before').content),
  fits: row.getBoundingClientRect().right <= innerWidth,
}))"""


def test_on_a_phone_results_come_before_the_filters_and_read_as_cards(world, sized):
    from tests.bookings.conftest import make_instrument

    make_instrument(world, name="卡片扫描电镜")
    phone = sized("researcher", "phone", "zh-hans")
    phone.goto("/instruments/")
    filters = phone.locator("[data-testid=filters]")
    assert filters.get_attribute("open") is None and not phone.locator("#id_c1").is_visible()
    assert phone.locator("#results").bounding_box()["y"] < 844  # the first result is on the first screen
    cards = phone.evaluate(CARD, "[data-testid=result]")
    assert cards and all(card["display"] == "block" and card["fits"] for card in cards)
    assert '"机构"' in cards[0]["labels"] and '"原值（元）"' in cards[0]["labels"]
    assert phone.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    phone.locator("[data-testid=filters] summary").click()
    assert phone.locator("#id_c1").is_visible()
    laptop = sized("researcher", "laptop", "zh-hans")
    laptop.goto("/instruments/")
    assert laptop.locator("#id_c1").is_visible()  # open where there is room
    assert laptop.evaluate(CARD, "[data-testid=result]")[0]["display"] == "table-row"


def test_my_bookings_and_the_usage_review_are_cards_on_a_phone(world, sized):
    import datetime as dt

    from bookings import services
    from tests.bookings.conftest import make_instrument, next_weekday
    from tests.usage.test_review_page import make_flags

    instrument = make_instrument(world, name="卡片预约仪器")
    start = next_weekday(1, 10)
    services.create_booking(user=world.manager, instrument_id=instrument.pk, start=start,
                            end=start + dt.timedelta(hours=1), purpose="cards")
    make_flags(world)
    phone = sized("manager", "phone", "zh-hans")
    for path, rows in [("/bookings/mine/", "[data-testid=booking-row]"), ("/bookings/review/", "tr[data-flag-id]")]:
        phone.goto(path)
        cards = phone.evaluate(CARD, rows)
        assert cards and all(card["display"] == "block" and card["fits"] for card in cards), path
        assert phone.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), path
