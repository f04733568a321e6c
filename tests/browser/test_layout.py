"""Pages that fit: at a laptop's 1366×900 and a phone's 390×844, in Chinese and English, as each role,
the page never scrolls sideways, no navigation label wraps inside a word, and every entry is reachable
(in a menu when they do not fit on one line)."""

import pytest

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

SIZES = {"laptop": (1366, 900), "phone": (390, 844)}
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


@pytest.fixture
def sized(browser, live_server):
    contexts = []

    def open_as(username, size, language):
        width, height = SIZES[size]
        context = browser.new_context(locale="en-US", timezone_id="Asia/Shanghai", base_url=live_server.url,
                                      viewport={"width": width, "height": height})
        context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        if username:
            log_in(page, username)
        return page

    yield open_as
    for context in contexts:
        context.close()


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
