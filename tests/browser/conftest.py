"""Playwright driving Debian's chromium (no downloaded browser) against the live test server."""

import os

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser(chromium_path):
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by test code
    # around it are ordinary synchronous ones.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(locale="en-US", timezone_id="Asia/Shanghai", base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


SIZES = {"laptop": (1366, 900), "phone": (390, 844)}


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


def log_in(page, username: str, password: str | None = None):
    """Log in through the login page, as a person would."""
    from tests.conftest import PASSWORD

    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password or PASSWORD)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    return page


@pytest.fixture
def login(page):
    def do_login(username: str, password: str | None = None):
        return log_in(page, username, password)

    return do_login


def open_menu(page) -> None:
    """Unfold the navigation when its entries are folded into the menu (many roles, a narrow window)."""
    toggle = page.locator("[data-testid=nav-toggle]")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()


def follow_nav(page, url_name: str) -> None:
    """Click a navigation entry as a person would: through the menu when the entries are folded into it."""
    open_menu(page)
    page.locator(f"[data-testid=nav] a[data-nav='{url_name}']").click()
