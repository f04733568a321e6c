import pytest

from tests.browser.conftest import open_menu

pytestmark = pytest.mark.browser


def test_a_lab_manager_logs_in_through_the_login_page_and_sees_their_navigation(world, page, login):
    login("manager")
    assert page.locator("[data-testid=account-link]").inner_text().strip() == "Manager"
    assert page.locator('[data-role="lab_manager"]').count() == 1
    assert page.locator("[data-testid=nav] a[data-nav='api:openapi-view']").count() == 1


def test_a_wrong_password_shows_a_form_error(world, page, login):
    login("researcher", "wrong-password")
    assert page.url.endswith("/accounts/login/")
    assert page.locator("[role=alert]").count() == 1
    assert page.locator("[data-testid=account-link]").count() == 0


def test_the_language_switch_turns_the_page_into_chinese(world, page, login):
    login("researcher")
    with page.expect_navigation():
        open_menu(page)
        page.select_option("#language-select", "zh-hans")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert "退出" in page.content()
