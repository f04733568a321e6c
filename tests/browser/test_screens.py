"""Every page as every demo role, at a laptop's 1366×900 and a phone's 390×844, on the demo platform's
data: the page never scrolls sideways, no short label (a button, a navigation entry, a form label, a
column head, a badge) wraps inside its word, and the Chinese page has no English outside data. A
screenshot of each page at each size is saved under the test's temporary directory to look at.

One browser, one logged-in context per role; each page is loaded once and measured at both sizes (the
viewport is resized, not the page reloaded). Pages are found by following the links of the pages a role
sees, one page per URL pattern (an instrument's page stands for all instruments' pages)."""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urlsplit

import pytest
from django.urls import Resolver404, resolve

from tests.browser.conftest import log_in
from tests.browser.test_layout import SIZES

pytestmark = pytest.mark.browser

ROLES = [None, "researcher", "company", "labmanager", "finance", "bureau"]
# Not pages: downloads, feeds, the API and its schema, the admin, HTMX fragments and JSON.
NOT_PAGES = re.compile(r"(\.(ics|csv|xlsx|pdf|json|svg|ico)$|^/api/|^/admin/|^/static/|^/media/|/events$|/progress$"
                       r"|/free$|/export|/download|^/i18n/|/logout)")
PAGES_PER_ROLE = 60

MEASURE = """() => {
  const lines = (node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    const tops = [...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top));
    return new Set(tops.map(t => Math.round(t / 4))).size;
  };
  // Shown, and not a label kept for screen readers only (a 1 px box).
  const shown = (e) => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden'
    && e.getBoundingClientRect().width > 2;
  const selector = 'nav a, nav button, button, a[role=button], label, th, summary, .badge, h1, h2, h3, dt';
  const wrapped = [];
  for (const element of document.querySelectorAll(selector)) {
    if (!shown(element)) continue;
    for (const node of element.childNodes) {
      if (node.nodeType !== Node.TEXT_NODE) continue;
      const text = node.textContent.trim();
      // A "word": no space inside, short (a Chinese label has no spaces; a sentence may wrap).
      // Brackets and punctuation are places to break ("收入（元）"), as spaces are.
      if (!text || /[\\s（）()、，,/·:：]/.test(text) || [...text].length > 10) continue;
      if (lines(node) > 1) wrapped.push(text);
    }
  }
  const root = document.scrollingElement;
  // What sticks out, to name in the report: the outermost elements reaching past the window's right edge.
  const wide = root.scrollWidth > window.innerWidth ? [...document.body.querySelectorAll('*')].filter(e =>
    e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement.closest('.table-scroll, .fc')
    && e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
    .slice(0, 3).map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}`) : [];
  return {scroll: root.scrollWidth, width: window.innerWidth, wrapped, wide};
}"""

TEXT = """() => {
  // noscript's content is plain text while scripts run; option lists hold data (organizations, labs).
  const skip = 'script, style, noscript, code, pre, kbd, samp, [translate=no], option';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || parent.closest('[hidden]')) continue;
    parts.push(node.textContent);
  }
  const attributes = [...document.querySelectorAll('[placeholder], [aria-label], [title], [data-label]')]
    .flatMap(e => ['placeholder', 'aria-label', 'title', 'data-label'].map(a => e.getAttribute(a) || ''));
  return [document.title, ...parts, ...attributes].join('\\n');
}"""

# Words that are the same in a Chinese page: brands, formats, units, codes.
ALLOWED = {
    "api", "openapi", "csv", "xlsx", "pdf", "ics", "icalendar", "http", "https", "url", "stripe", "email",
    "cny", "rmb", "utc", "asia", "shanghai", "token", "bearer", "json", "html", "iso", "cma", "cnas",
    "english", "instrumentshare", "swagger", "ninja", "django", "redis", "celery", "excel", "wps",
    "apple", "google", "outlook", "thunderbird", "webp", "authorization", "sub", "sup",
}
URL_OR_MAIL = re.compile(r"(https?://\S+|\S+@\S+|/[\w./?=&%-]+)")
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]{2,}")
CODE = re.compile(r"\b[\w-]*(_[\w-]*|[A-Z]{2,}[\w-]*)\b")


def data_words() -> set[str]:
    """Every word stored in the database's text columns: instrument, people and place names, models."""
    from django.apps import apps
    from django.db import models

    words: set[str] = set()
    for model in apps.get_models():
        if model._meta.app_label in ("admin", "sessions", "contenttypes", "auth", "axes", "django_celery_beat"):
            continue
        fields = [f.attname for f in model._meta.concrete_fields
                  if isinstance(f, (models.CharField, models.TextField, models.JSONField))]
        if not fields:
            continue
        for row in model._default_manager.values_list(*fields).iterator():
            for value in row:
                if value:
                    words.update(w.lower() for w in WORD.findall(str(value)))
    return words


def english_words(text: str, allowed: set[str]) -> list[str]:
    """English words of a page's text, leaving out links and addresses, codes (STRIPE_SECRET_KEY, YYYY-MM,
    JPEG: capitals or an underscore) and the allowed words."""
    words = CODE.sub(" ", URL_OR_MAIL.sub(" ", text))
    return sorted({word for word in WORD.findall(words) if word.lower() not in allowed})


def page_key(path: str) -> str | None:
    if NOT_PAGES.search(path):
        return None
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.view_name


def crawl(page, base: str):
    """Yield (view name, path) of each page this role reaches from the home page and the navigation."""
    seen_keys: set[str] = set()
    queue = deque(["/"])
    queued = {"/"}
    while queue and len(seen_keys) < PAGES_PER_ROLE:
        path = queue.popleft()
        key = page_key(urlsplit(path).path)
        if key is None or key in seen_keys:
            continue
        response = page.goto(path)
        if response is None or response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
            continue
        if urlsplit(page.url).path != urlsplit(path).path:
            continue  # redirected (to the login page, say): that page is crawled in its own right
        seen_keys.add(key)
        yield key, path
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            parts = urlsplit(href)
            if href.startswith(base) and parts.path not in queued:
                queued.add(parts.path)
                # One variant of each page: the first link to it, without its query string.
                queue.append(parts.path)


def test_every_page_fits_both_screens_as_every_demo_role_and_the_chinese_page_is_chinese(
        browser, live_server, tmp_path):
    from catalog.reference import load_categories
    from instrumentshare.accounts.demo import DEMO_PASSWORD
    from portal.demo import seed_all

    load_categories()  # an earlier transactional test's flush empties even the reference tables
    seed_all()
    allowed = ALLOWED | data_words()
    shots = tmp_path / "screens"
    shots.mkdir()
    problems, english, visited = [], {}, 0
    laptop, phone = SIZES["laptop"], SIZES["phone"]
    for role in ROLES:
        context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=live_server.url,
                                      viewport={"width": laptop[0], "height": laptop[1]})
        context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server.url}])
        page = context.new_page()
        page.set_default_timeout(15000)
        if role:
            log_in(page, role, DEMO_PASSWORD)
        for key, path in crawl(page, live_server.url):
            visited += 1
            words = english_words(page.evaluate(TEXT), allowed)
            if words:
                english[(role, path)] = words
            for size, (width, height) in (("laptop", laptop), ("phone", phone)):
                page.set_viewport_size({"width": width, "height": height})
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                if size == "phone" and page.locator(".fc").count():
                    # FullCalendar measures its box when it renders: load the page as a phone would.
                    page.reload()
                    page.locator(".fc[data-ready=true] .fc-view").first.wait_for()
                figures = page.evaluate(MEASURE)
                if figures["scroll"] > figures["width"] or figures["wrapped"]:
                    problems.append((role, path, size, figures))
                page.screenshot(path=shots / f"{role or 'anonymous'}-{key.replace(':', '-')}-{size}.png")
            page.set_viewport_size({"width": laptop[0], "height": laptop[1]})
        context.close()
    assert visited > 40, visited  # the crawl reached the pages, not only the home page
    report = "\n".join([f"{role} {path} {size}: {figures}" for role, path, size, figures in problems]
                       + [f"{role} {path} (zh): {words}" for (role, path), words in english.items()])
    (tmp_path / "report.txt").write_text(report)
    assert problems == [] and english == {}, report
