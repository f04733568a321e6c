"""The authorization matrix of the pages, walked from Django's own URL list.

Every named URL pattern outside /api/v1/ (the API matrix covers those) must have a row here, so a
new page without one fails ``test_every_page_has_a_row``; the admin site is one row for its prefix.
A row is ``(GET, POST)``: what each role gets for a GET, and for a POST with a valid CSRF token
(``None`` for a page that takes no writes). Answers are statuses, ``login`` for the redirect to the
login page, ``302`` for a redirect anywhere else (a write done, or refused with a message shown on
the next page). ``*`` is every role the row does not name; ``logger`` (the instrument's token sent
as a Bearer header, which pages ignore) gets the anonymous answer and ``admin`` (a Django superuser)
the bureau's where the row does not name them. Signed-in roles use the session, as a browser does.
The objects are those of ``tests/security/matrix.py``; the same matrix, in words, is in README.md.

Separately, every page refuses a POST from a signed-in session without the CSRF token (403), and
accepts the same POST past the CSRF check when the token is there.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.http import HttpResponseForbidden
from django.urls import URLResolver, get_resolver, reverse
from django.utils.http import urlencode

from tests.security.matrix import ROLES, rolled_back

SIGNED_IN = "anonymous:login *:200"
POST_ONLY = "anonymous:login *:405"
LAB_MANAGERS = "anonymous:login manager:200 other_manager:200 *:403"
MANAGER_OF_INSTRUMENT = "anonymous:login manager:200 *:403"
MANAGER_OF_INSTRUMENT_WRITE = "anonymous:login manager:302 *:403"
BOOKING_SEEN = "anonymous:login researcher:200 manager:200 bureau:200 *:404"
FINANCE_OFFICERS = "anonymous:login finance:200 other_finance:200 bureau:200 *:404"
INVOICE_SEEN = "anonymous:login manager:200 finance:200 bureau:200 *:404"
OVERSIGHT_SCOPED = "anonymous:login manager:200 other_manager:200 finance:200 other_finance:200 bureau:200 *:404"
EVALUATION_READERS = "anonymous:login finance:200 other_finance:200 bureau:200 *:404"

PAGES = {
    "home": ("*:200", None),
    "audit_heads": ("*:200", None),  # public: the audit trail's head of each day
    "healthz": ("*:200", None),
    "favicon": ("*:200", None),
    "readyz": ("*:200", None),
    "metrics": ("*:403", None),  # METRICS_TOKEN is set here: only the scraper's bearer token reads it
    "set_language": ("*:302", "*:302"),
    "admin": ("admin:200 *:302", None),  # the admin site's own login for everyone but staff
    # accounts
    "accounts:login": ("anonymous:200 *:302", "anonymous:200 *:302"),
    "accounts:logout": ("*:405", "*:302"),
    # institutional login (OpenID Connect) is off unless configured; tests/accounts/test_oidc_login.py turns it on
    "accounts:oidc_authenticate": ("*:404", None),
    "accounts:oidc_callback": ("*:404", None),
    "accounts:account": (SIGNED_IN, SIGNED_IN),
    "accounts:revoke_token": (POST_ONLY, "anonymous:login researcher:302 *:404"),  # the researcher's token
    # catalog: the instrument of lab A, published
    "catalog:search": ("*:200", None),
    "catalog:detail": ("*:200", None),
    "catalog:new": (LAB_MANAGERS, LAB_MANAGERS),
    "catalog:my_labs": (LAB_MANAGERS, None),
    "catalog:import": (LAB_MANAGERS, LAB_MANAGERS),
    "catalog:export": ("anonymous:login manager:200 bureau:200 *:403", None),
    "catalog:compliance": ("anonymous:login researcher:403 other_researcher:403 company_user:403 *:200", None),
    "catalog:compliance_export": ("anonymous:login researcher:403 other_researcher:403 company_user:403 *:200",
                                  None),
    "catalog:listing_requests": ("anonymous:login manager:200 other_manager:200 bureau:200 *:403", None),
    "catalog:decide": (POST_ONLY, "anonymous:login bureau:302 *:403"),
    "catalog:request_training": (POST_ONLY, "anonymous:login *:302"),
    "catalog:training_queue": (LAB_MANAGERS, None),
    # a refusal (not the lab's manager) is a message on the queue page it redirects to
    "catalog:decide_training": (POST_ONLY, "anonymous:login *:302"),
    "catalog:manage": (MANAGER_OF_INSTRUMENT, None),
    "catalog:listing_action": (POST_ONLY, MANAGER_OF_INSTRUMENT_WRITE),
    "catalog:edit": (MANAGER_OF_INSTRUMENT, MANAGER_OF_INSTRUMENT),
    "catalog:policy": (MANAGER_OF_INSTRUMENT, MANAGER_OF_INSTRUMENT),
    "catalog:hours": (MANAGER_OF_INSTRUMENT, MANAGER_OF_INSTRUMENT),
    "catalog:add_exception": (POST_ONLY, MANAGER_OF_INSTRUMENT_WRITE),
    "catalog:downtime": (MANAGER_OF_INSTRUMENT, MANAGER_OF_INSTRUMENT),
    "catalog:cancel_downtime": (POST_ONLY, MANAGER_OF_INSTRUMENT_WRITE),
    "catalog:qualifications": (MANAGER_OF_INSTRUMENT, MANAGER_OF_INSTRUMENT),
    "catalog:qualification_action": (POST_ONLY, MANAGER_OF_INSTRUMENT_WRITE),
    # bookings: the researcher's pending booking on that instrument
    "bookings:calendar": ("*:200", None),
    "bookings:calendar_events": ("*:200", None),
    "bookings:free_list": ("*:200", None),
    "bookings:new": (SIGNED_IN, SIGNED_IN),
    "bookings:detail": (BOOKING_SEEN, None),
    "bookings:reschedule": (POST_ONLY, "anonymous:login researcher:200 manager:200 bureau:200 *:404"),
    "bookings:cancel": (POST_ONLY, "anonymous:login researcher:302 manager:302 bureau:302 *:404"),
    # only the booker of a booking the lab cancelled rebooks from it; the matrix's booking is not cancelled
    "bookings:rebook": (POST_ONLY, "anonymous:login *:404"),
    "bookings:approve": (POST_ONLY, "anonymous:login researcher:302 manager:302 bureau:302 *:404"),
    "bookings:reject": (POST_ONLY, "anonymous:login researcher:302 manager:302 bureau:302 *:404"),
    "usage:check_in": (POST_ONLY, "anonymous:login researcher:302 *:404"),
    "usage:check_out": (POST_ONLY, "anonymous:login researcher:302 *:404"),
    # the flag (lab A's) is in the form: another lab's manager gets "no such flag" as a message
    "usage:review": ("anonymous:login manager:200 other_manager:200 *:404",
                        "anonymous:login manager:302 other_manager:302 *:404"),
    "bookings:series": (BOOKING_SEEN, None),   # the researcher's weekly series on that instrument
    "bookings:series_cancel": (POST_ONLY, "anonymous:login researcher:302 manager:302 bureau:302 *:404"),
    "bookings:mine": (SIGNED_IN, None),
    # the week calendar's drag: JSON from the same form and service as "Move to another time" (no times: 422)
    "bookings:move": (POST_ONLY, "anonymous:login researcher:422 manager:422 bureau:422 *:404"),
    # waiting lists: the researcher's entry (no offer on it: accept and decline are refused with a message)
    "bookings:waitlist": (SIGNED_IN, None),
    "bookings:join_waitlist": (SIGNED_IN, SIGNED_IN),
    "bookings:accept_offer": (POST_ONLY, "anonymous:login researcher:302 *:404"),
    "bookings:decline_offer": (POST_ONLY, "anonymous:login researcher:302 *:404"),
    "bookings:leave_waitlist": (POST_ONLY, "anonymous:login researcher:302 *:404"),
    # submissions: the researcher's sample request in progress on lab A's instrument, with a result file
    "submissions:mine": (SIGNED_IN, None),
    "submissions:lab_queue": (SIGNED_IN, None),   # everyone sees their own labs' queue (empty for most)
    "submissions:receive_many": (POST_ONLY, "anonymous:login *:302"),
    "submissions:new": (SIGNED_IN, SIGNED_IN),
    "submissions:detail": ("anonymous:login researcher:200 manager:200 bureau:200 *:404", None),
    "submissions:act": (POST_ONLY, "anonymous:login researcher:302 manager:302 bureau:302 *:404"),
    "submissions:download": ("anonymous:login researcher:200 manager:200 *:404", None),
    "submissions:signed_download": ("*:404", None),   # a token that is not a signed link: no file
    "bookings:lab_queue": ("anonymous:login manager:200 other_manager:200 *:404", None),
    "bookings:lab_events": ("manager:200 *:404", None),  # JSON for the lab calendar: lab A's managers only
    # the booking's invitation: lab A's managers send it again (or are told it went out), others 404
    "bookings:resend_notification": (POST_ONLY, "anonymous:login manager:302 *:404"),
    "bookings:create_feed": (POST_ONLY, SIGNED_IN),
    "bookings:revoke_feed": (POST_ONLY, "anonymous:login researcher:302 *:404"),
    "bookings:instrument_feed": ("*:200", None),
    "bookings:private_feed": ("*:200", None),  # the secret token in the address is the credential
    # billing: organization A's October, the cost centre's invoice, the researcher's project and charge
    "billing:finance": (FINANCE_OFFICERS, None),
    "billing:close": (POST_ONLY, "anonymous:login finance:302 other_finance:302 bureau:302 *:404"),
    "billing:period_progress": ("anonymous:login finance:200 bureau:200 *:404", None),
    "billing:export": (FINANCE_OFFICERS, None),
    "billing:payments": (FINANCE_OFFICERS, None),
    "billing:subsidies": (FINANCE_OFFICERS, None),
    "billing:mine": (SIGNED_IN, None),
    "billing:decide_access": (POST_ONLY, "anonymous:login researcher:302 finance:302 bureau:302 *:404"),
    "billing:account": ("anonymous:login researcher:200 finance:200 bureau:200 *:404", None),
    "billing:invoice": (INVOICE_SEEN, None),
    "billing:invoice_pdf": (INVOICE_SEEN, None),
    "billing:credit_note": (POST_ONLY, "anonymous:login manager:302 finance:302 bureau:302 *:404"),
    "billing:transfer": (POST_ONLY, "anonymous:login manager:302 finance:302 bureau:302 *:404"),
    "billing:pay": (POST_ONLY, "anonymous:login company_user:302 finance:302 bureau:302 *:404"),  # the company's
    "billing:waive": (POST_ONLY, "anonymous:login manager:302 finance:302 bureau:302 *:404"),
    # billing's pages answer 404 to a role they are not for; only the bureau issues vouchers
    "billing:vouchers": ("anonymous:login finance:200 other_finance:200 company_user:200 bureau:200 *:404",
                         "anonymous:login bureau:200 *:404"),
    "billing:voucher": ("anonymous:login company_user:200 finance:200 bureau:200 *:404", None),
    # oversight
    "oversight:dashboard": (OVERSIGHT_SCOPED, None),
    "oversight:freshness": (OVERSIGHT_SCOPED, None),
    "oversight:refresh": (POST_ONLY, "anonymous:login bureau:302 *:404"),
    "oversight:statistics": (OVERSIGHT_SCOPED, None),
    "oversight:statistics_csv": (OVERSIGHT_SCOPED, None),
    "oversight:chart_csv": (OVERSIGHT_SCOPED, None),
    "oversight:evaluation": (EVALUATION_READERS, None),
    "oversight:evaluation_xlsx": (EVALUATION_READERS, None),
    "oversight:purchase_check": ("anonymous:login manager:200 other_manager:200 bureau:200 *:404",
                                 "anonymous:login manager:200 other_manager:200 bureau:200 *:404"),
    "oversight:exports": (EVALUATION_READERS, None),
    "oversight:run_export": (POST_ONLY, "anonymous:login bureau:302 *:404"),
    "oversight:export_download": ("anonymous:login finance:200 bureau:200 *:404", None),
}


def pages() -> dict[str, object]:
    """Every page pattern by name (``namespace:name``; the route where a pattern has none)."""
    found = {}

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                if entry.namespace == "api":
                    continue  # /api/v1/: tests/security/test_authorization_matrix.py
                if entry.namespace == "admin":
                    found["admin"] = entry  # Django's admin: one row for the prefix
                    continue
                inner = ":".join(part for part in (namespace, entry.namespace) if part) or None
                walk(entry.url_patterns, route, inner)
            elif entry.callback.__module__ != "django.views.static":  # media files in DEBUG
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or route
                found[name] = entry
    walk(get_resolver().url_patterns, "", None)
    return found


def expected(row: str, role: str) -> str:
    rules = dict(item.split(":") for item in row.split())
    if role not in rules:
        role = {"logger": "anonymous", "admin": "bureau"}.get(role, role)
    return rules.get(role, rules.get("*"))


def test_every_page_has_a_row():
    missing = sorted(set(pages()) - set(PAGES))
    assert missing == [], f"add these pages to the page authorization matrix: {missing}"
    assert sorted(set(PAGES) - set(pages())) == [], "rows for pages that no longer exist"


def test_every_row_names_known_roles_and_post_only_pages_have_a_post_row():
    for name, (get_row, post_row) in PAGES.items():
        for row in filter(None, (get_row, post_row)):
            assert {item.split(":")[0] for item in row.split()} <= {*ROLES, "*"}, name
        if "405" in get_row:
            assert post_row is not None, f"{name} takes only POST: say what a POST gets"


def _path(name: str, matrix) -> str:
    if name == "admin":
        return reverse("admin:index")
    ids = {**matrix.ids, "fmt": "csv", "token": matrix.feed}
    ids.update({
        "catalog:listing_action": {"action": "share-mode"},
        "catalog:qualification_action": {"item_id": matrix.ids["qualification_id"], "action": "revoke"},
        "billing:pay": {"invoice_id": matrix.ids["company_invoice_id"]},
        "catalog:decide_training": {"request_id": matrix.ids["training_request_id"], "action": "decline"},
        "submissions:detail": {"request_id": matrix.ids["request_id"]["submissions"]},
        "submissions:download": {"request_id": matrix.ids["request_id"]["submissions"]},
        "submissions:act": {"request_id": matrix.ids["request_id"]["submissions"], "move": "start"},
    }.get(name, {}))
    converters = pages()[name].pattern.converters
    kwargs = {key: ids[key] if not isinstance(ids[key], dict) else ids[key][""] for key in converters}
    return reverse(name, kwargs=kwargs)


def query_strings(matrix) -> dict:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    week = {"start": start.isoformat(), "end": (start + dt.timedelta(days=7)).isoformat()}
    return {
        "bookings:new": {"instrument": matrix.ids["instrument_id"]},
        "bookings:join_waitlist": {"instrument": matrix.ids["instrument_id"]},
        "bookings:calendar_events": week,
        "bookings:lab_events": week,
        "billing:export": {"period": matrix.ids["month"], "format": "csv"},
    }


def bodies(matrix) -> dict:
    return {
        "catalog:decide": {"decision": "reject", "note": "matrix"},
        "bookings:cancel": {"reason": "matrix"},
        "bookings:series_cancel": {"scope": "all", "reason": "matrix"},
        "bookings:reject": {"reason": "matrix"},
        "usage:review": {"flag": matrix.ids["flag_id"], "decision": "accepted"},
        "bookings:create_feed": {"scope": "mine"},
        "billing:decide_access": {"approve": "1"},
        "billing:credit_note": {"reason": "matrix"},
        "billing:transfer": {"amount": "1.00", "reference": "matrix"},
        "billing:waive": {"reason": "matrix"},
    }


def _headers(role: str, matrix) -> dict:
    return {"Authorization": f"Bearer {matrix.logger}"} if role == "logger" else {}


def _good(response, want: str) -> bool:
    login = reverse("accounts:login")
    if want == "login":
        return response.status_code == 302 and response["Location"].startswith(f"{login}?next=")
    if want == "302":
        return response.status_code == 302 and not response["Location"].startswith(login)
    return str(response.status_code) == want


@pytest.fixture
def page_settings(settings, tmp_path):
    settings.METRICS_TOKEN = "matrix-metrics-token"
    settings.RATE_LIMIT_BOOKINGS = "100000/m"
    settings.RATE_LIMIT_EXPORTS = "100000/m"
    settings.OVERSIGHT_EXPORT_DIR = str(tmp_path)
    return settings


@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_role_gets_the_right_answer(name, matrix, db, page_settings):
    path = _path(name, matrix)
    get_row, post_row = PAGES[name]
    params, body = query_strings(matrix).get(name), bodies(matrix).get(name, {})
    post_path = f"{path}?{urlencode(params)}" if params else path  # a form posts back to its own address
    wrong = {}
    for role in ROLES:
        headers = _headers(role, matrix)
        response = rolled_back(matrix.client(role).get, path, data=params, headers=headers)
        if not _good(response, expected(get_row, role)):
            wrong[f"GET {role}"] = (response.status_code, expected(get_row, role))
        if post_row is not None:
            response = rolled_back(matrix.client(role).post, post_path, data=body, headers=headers)
            if not _good(response, expected(post_row, role)):
                wrong[f"POST {role}"] = (response.status_code, expected(post_row, role))
    assert wrong == {}, f"{name} ({path}): {wrong}"


CSRF_REFUSED = "csrf-refused"


def refuse_csrf(request, reason=""):
    return HttpResponseForbidden(CSRF_REFUSED)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_a_session_post_without_the_csrf_token_is_refused(name, matrix, db, page_settings):
    page_settings.CSRF_FAILURE_VIEW = f"{__name__}.refuse_csrf"
    path = _path(name, matrix)
    without = rolled_back(matrix.client("researcher", enforce_csrf_checks=True).post, path, data={})
    assert (without.status_code, without.content) == (403, CSRF_REFUSED.encode()), name
    # The same POST with the token passes the CSRF check (whatever the page then answers).
    client = matrix.client("researcher", enforce_csrf_checks=True)
    secret = "matrixcsrfsecret0123456789abcdef"  # a cookie secret is 32 letters and digits
    client.cookies[django_settings.CSRF_COOKIE_NAME] = secret
    with_token = rolled_back(client.post, path, data={"csrfmiddlewaretoken": secret})
    assert with_token.content != CSRF_REFUSED.encode(), name
