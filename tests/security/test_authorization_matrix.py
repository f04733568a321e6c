"""The authorization matrix of the API, walked from its own route list.

Every operation of /api/v1 (from the OpenAPI schema) must have a row here, so a new route without
one fails ``test_every_api_operation_has_a_row``, and every row is walked by
``test_each_role_gets_the_right_answer``. A row says what each role gets. ``ok`` means the request
passed authorization (any status but 401, 403 and 404: an empty body then gives 422, a repeated
action 409…); a number is the status expected. ``*`` is every role the row does not name;
``admin`` (a Django superuser, a platform administrator) gets the bureau's answer where the row
does not name it. Callers use API tokens; ``logger`` is the instrument's logger token. The same
matrix, in words, is in README.md ("Who may do what"). Object routes point at the objects of
``tests/security/matrix.py``, owned by ``researcher`` in lab A (managed by ``manager``,
organization A with ``finance``); the other people are outsiders. Every write made with the
browser session must also carry the CSRF token (``test_a_session_write_without_the_csrf_token_is_refused``).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from instrumentshare.api import api
from tests.security.matrix import ROLES, rolled_back

PUBLIC = "*:ok"
# Open to all (accounts.auth.PUBLIC_AUTH), but a token that is not an API token is refused.
PUBLIC_BAD_TOKEN_401 = "logger:401 *:ok"
SIGNED_IN = "anonymous:401 logger:401 *:ok"
OWN = "anonymous:401 logger:401 *:ok"  # /me routes: everyone acts on their own objects
BOOKING_SEEN = "anonymous:401 logger:401 researcher:ok manager:ok bureau:ok *:404"
BOOKING_LAB_ACTION = "anonymous:401 logger:401 researcher:403 manager:ok bureau:403 *:404"
BOOKING_BOOKER_ACTION = "anonymous:401 logger:401 researcher:ok manager:403 bureau:403 *:404"
BOOKING_CANCEL = "anonymous:401 logger:401 researcher:ok manager:ok bureau:403 *:404"
CHECK_IN_OUT = "anonymous:401 logger:401 researcher:ok *:404"
OWN_ENTRY = "anonymous:401 logger:401 researcher:ok *:404"
LAB_MANAGER_OF_INSTRUMENT = "anonymous:401 logger:401 manager:ok *:404"
LOGGER_ONLY = "logger:ok *:401"
# billing: the project of organization A led by the researcher; its PI and organization A's finance decide
PROJECT_SEEN = "anonymous:401 logger:401 researcher:ok finance:ok bureau:ok *:404"
PROJECT_FINANCE_ACTION = "anonymous:401 logger:401 researcher:403 finance:ok bureau:ok *:404"
# the invoice of lab A's cost centre, issued by organization A: its finance and the lab's manager see it
INVOICE_SEEN = "anonymous:401 logger:401 manager:ok finance:ok bureau:ok *:404"
INVOICE_ISSUER_ACTION = "anonymous:401 logger:401 manager:403 finance:ok bureau:ok *:404"
# any organization's finance officer (their own figures), and the bureau
FINANCE_OFFICERS = "anonymous:401 logger:401 finance:ok other_finance:ok bureau:ok *:403"
ORGANIZATION_A_FINANCE = "anonymous:401 logger:401 finance:ok bureau:ok *:403"
# the innovation voucher of the company, redeemed at organization A
VOUCHER_SEEN = "anonymous:401 logger:401 company_user:ok finance:ok bureau:ok *:404"
# oversight: the bureau sees all, finance officers their organizations, lab managers their labs
OVERSIGHT_SCOPED = "anonymous:401 logger:401 manager:ok other_manager:ok finance:ok other_finance:ok bureau:ok *:404"
OVERSIGHT_OF_A = "anonymous:401 logger:401 manager:ok finance:ok bureau:ok *:404"
# submissions: the researcher's request on lab A's instrument, in progress (a move from the wrong state is a
# 409, which passed authorization); the bureau sees it but neither side's moves are its to make
SAMPLE_SEEN = "anonymous:401 logger:401 researcher:ok manager:ok bureau:ok *:404"
SAMPLE_FILES = "anonymous:401 logger:401 researcher:ok manager:ok *:404"
SAMPLE_LAB_ACTION = "anonymous:401 logger:401 researcher:403 manager:ok bureau:403 *:404"
SAMPLE_REQUESTER_ACTION = "anonymous:401 logger:401 researcher:ok manager:403 bureau:403 *:404"
SAMPLE_EITHER_ACTION = "anonymous:401 logger:401 researcher:ok manager:ok bureau:403 *:404"
LAB_SETS_UP = "anonymous:401 logger:401 manager:ok *:403"
EVALUATION_READERS = "anonymous:401 logger:401 finance:ok other_finance:ok bureau:ok *:404"

MATRIX = {
    "POST /api/v1/auth/token": PUBLIC,
    "GET /api/v1/audit/events": SIGNED_IN,
    "GET /api/v1/audit/head": PUBLIC,
    "GET /api/v1/me": OWN,
    "GET /api/v1/me/tokens": OWN,
    "POST /api/v1/me/tokens": OWN,
    "POST /api/v1/me/tokens/{token_id}/revoke": "anonymous:401 logger:401 researcher:ok *:404",
    "GET /api/v1/me/export": OWN,
    "GET /api/v1/me/feeds": OWN,
    "POST /api/v1/me/feeds": OWN,
    "POST /api/v1/me/feeds/{feed_id}/revoke": "anonymous:401 logger:401 researcher:ok *:404",
    # catalog
    "GET /api/v1/instruments": PUBLIC_BAD_TOKEN_401,
    "GET /api/v1/categories": PUBLIC_BAD_TOKEN_401,
    "GET /api/v1/instruments/{instrument_id}": PUBLIC_BAD_TOKEN_401,
    "POST /api/v1/instruments": "anonymous:401 logger:401 manager:ok *:403",  # into lab A
    "POST /api/v1/instruments/import": SIGNED_IN,  # multipart: no file here gives 422; see tests/catalog
    "GET /api/v1/instruments/export": "anonymous:401 logger:401 manager:ok bureau:ok *:403",  # lab A's
    "PATCH /api/v1/instruments/{instrument_id}": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/photo": "anonymous:401 logger:401 *:ok",  # multipart; see tests/catalog
    "POST /api/v1/instruments/{instrument_id}/publish": "anonymous:401 logger:401 manager:ok *:403",
    # the demo instrument is mandatory: unpublishing it needs the bureau's approval (403 for everyone)
    "POST /api/v1/instruments/{instrument_id}/unpublish": "anonymous:401 logger:401 *:403",
    "POST /api/v1/instruments/{instrument_id}/share-mode": "anonymous:401 logger:401 manager:ok *:403",
    "PATCH /api/v1/instruments/{instrument_id}/policy": "anonymous:401 logger:401 manager:ok *:403",
    "PUT /api/v1/instruments/{instrument_id}/opening-hours": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/opening-exceptions": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/downtime": "anonymous:401 logger:401 manager:ok *:403",
    "DELETE /api/v1/instruments/{instrument_id}/downtime/{downtime_id}": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/listing-requests": "anonymous:401 logger:401 manager:ok *:403",
    "GET /api/v1/listing-requests": SIGNED_IN,
    # only the bureau decides, and it is asked before the request is looked up: 403 whatever the id
    "POST /api/v1/listing-requests/{request_id}/decision": "anonymous:401 logger:401 bureau:ok *:403",
    "GET /api/v1/instruments/{instrument_id}/qualifications": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/qualifications": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/qualifications/{qualification_id}/revoke": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/training-requests": SIGNED_IN,
    "GET /api/v1/instruments/{instrument_id}/training-requests": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/training-requests/{training_request_id}/decline": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/training-requests/{training_request_id}/grant": "anonymous:401 logger:401 manager:ok *:403",
    "GET /api/v1/training-requests": SIGNED_IN,   # each manager's own queue; empty for everyone else
    # the bureau sees every organization; lab managers and finance their own; researchers nothing
    "GET /api/v1/compliance": "anonymous:401 logger:401 researcher:403 other_researcher:403 company_user:403 *:ok",
    # bookings
    "POST /api/v1/bookings": SIGNED_IN,
    "GET /api/v1/bookings": SIGNED_IN,
    "GET /api/v1/bookings/estimate": SIGNED_IN,   # a published instrument: anyone signed in may ask its price
    "GET /api/v1/bookings/{booking_id}": BOOKING_SEEN,
    "PATCH /api/v1/bookings/{booking_id}": BOOKING_BOOKER_ACTION,
    "POST /api/v1/bookings/{booking_id}/cancel": BOOKING_CANCEL,
    "POST /api/v1/bookings/{booking_id}/approve": BOOKING_LAB_ACTION,
    "POST /api/v1/bookings/{booking_id}/reject": BOOKING_LAB_ACTION,
    # the researcher's weekly series on that instrument: seen and cancelled like its bookings
    "POST /api/v1/booking-series": SIGNED_IN,
    "GET /api/v1/booking-series": SIGNED_IN,
    "GET /api/v1/booking-series/{series_id}": BOOKING_SEEN,
    "POST /api/v1/booking-series/{series_id}/cancel": BOOKING_CANCEL,
    # waiting lists: the researcher's entry is theirs alone (an accept or decline without an offer is a 409)
    "GET /api/v1/waitlist": OWN,
    "POST /api/v1/waitlist": SIGNED_IN,
    "GET /api/v1/waitlist/{entry_id}": OWN_ENTRY,
    "POST /api/v1/waitlist/{entry_id}/accept": OWN_ENTRY,
    "POST /api/v1/waitlist/{entry_id}/decline": OWN_ENTRY,
    "POST /api/v1/waitlist/{entry_id}/leave": OWN_ENTRY,
    "GET /api/v1/instruments/{instrument_id}/availability": PUBLIC_BAD_TOKEN_401,
    # submissions
    "GET /api/v1/instruments/{instrument_id}/sample-service": SIGNED_IN,
    "PUT /api/v1/instruments/{instrument_id}/sample-service": LAB_SETS_UP,
    "POST /api/v1/instruments/{instrument_id}/analyses": LAB_SETS_UP,
    "GET /api/v1/submissions/estimate": SIGNED_IN,
    "POST /api/v1/submissions": SIGNED_IN,
    "GET /api/v1/submissions": SIGNED_IN,
    "POST /api/v1/submissions/receive": SIGNED_IN,   # each request refused on its own, in the answer
    "GET /api/v1/submissions/{request_id}": SAMPLE_SEEN,
    "POST /api/v1/submissions/{request_id}/quote": SAMPLE_LAB_ACTION,
    "POST /api/v1/submissions/{request_id}/accept": SAMPLE_REQUESTER_ACTION,
    "POST /api/v1/submissions/{request_id}/decline": SAMPLE_REQUESTER_ACTION,
    "POST /api/v1/submissions/{request_id}/receive": SAMPLE_LAB_ACTION,
    "POST /api/v1/submissions/{request_id}/schedule": SAMPLE_LAB_ACTION,
    "POST /api/v1/submissions/{request_id}/start": SAMPLE_LAB_ACTION,
    "POST /api/v1/submissions/{request_id}/deliver": SAMPLE_LAB_ACTION,
    "POST /api/v1/submissions/{request_id}/complete": SAMPLE_EITHER_ACTION,
    "POST /api/v1/submissions/{request_id}/cancel": SAMPLE_EITHER_ACTION,
    "POST /api/v1/submissions/{request_id}/reject": SAMPLE_LAB_ACTION,
    "POST /api/v1/submissions/{request_id}/rate": SAMPLE_REQUESTER_ACTION,
    "POST /api/v1/submissions/{request_id}/files": "anonymous:401 logger:401 *:ok",  # multipart; see tests/submissions
    "GET /api/v1/submissions/{request_id}/files/{file_id}": SAMPLE_FILES,
    "POST /api/v1/submissions/{request_id}/files/{file_id}/link": SAMPLE_FILES,
    # usage
    "POST /api/v1/usage/events": LOGGER_ONLY,
    "POST /api/v1/bookings/{booking_id}/check-in": CHECK_IN_OUT,
    "POST /api/v1/bookings/{booking_id}/check-out": CHECK_IN_OUT,
    "GET /api/v1/instruments/{instrument_id}/logger-tokens": LAB_MANAGER_OF_INSTRUMENT,
    "POST /api/v1/instruments/{instrument_id}/logger-tokens": LAB_MANAGER_OF_INSTRUMENT,
    "POST /api/v1/logger-tokens/{token_id}/revoke": LAB_MANAGER_OF_INSTRUMENT,
    "GET /api/v1/usage/flags": SIGNED_IN,
    "POST /api/v1/usage/flags/{flag_id}": LAB_MANAGER_OF_INSTRUMENT,
    "POST /api/v1/service-records/{record_id}/rating": "anonymous:401 logger:401 researcher:ok *:404",
    "POST /api/v1/usage/import": SIGNED_IN,
    # billing: accounts (account_id: the researcher's project; user_id: a lab A student who asked to charge it)
    "GET /api/v1/billing/accounts": SIGNED_IN,
    "GET /api/v1/billing/accounts/chargeable": SIGNED_IN,
    "POST /api/v1/billing/accounts": ORGANIZATION_A_FINANCE,
    "GET /api/v1/billing/accounts/{account_id}": PROJECT_SEEN,
    "PATCH /api/v1/billing/accounts/{account_id}": PROJECT_FINANCE_ACTION,
    "GET /api/v1/billing/accounts/{account_id}/statement": PROJECT_SEEN,
    "POST /api/v1/billing/accounts/{account_id}/authorizations": PROJECT_SEEN,
    "DELETE /api/v1/billing/accounts/{account_id}/authorizations/{user_id}": PROJECT_SEEN,
    "POST /api/v1/billing/accounts/{account_id}/access-requests": SIGNED_IN,  # anyone may ask the PI
    "GET /api/v1/billing/access-requests": OWN,
    "POST /api/v1/billing/access-requests/{authorization_id}/decide": PROJECT_SEEN,
    # rate cards of lab A's instrument; card_id is a card no charge used yet
    "GET /api/v1/billing/instruments/{instrument_id}/rate-cards": PUBLIC_BAD_TOKEN_401,
    "GET /api/v1/billing/instruments/{instrument_id}/fee-standard": PUBLIC_BAD_TOKEN_401,
    "POST /api/v1/billing/instruments/{instrument_id}/rate-cards":
        "anonymous:401 logger:401 manager:ok finance:ok bureau:ok *:403",
    "DELETE /api/v1/billing/rate-cards/{card_id}": "anonymous:401 logger:401 manager:ok finance:ok bureau:ok *:403",
    # charges: charge_id is the researcher's charge on lab A's cost centre
    "GET /api/v1/billing/charges": OWN,
    "GET /api/v1/billing/my-costs": OWN,
    "POST /api/v1/billing/charges/adjustments": "anonymous:401 logger:401 finance:ok bureau:ok *:404",
    "POST /api/v1/billing/charges/{charge_id}/waive": "anonymous:401 logger:401 manager:ok finance:ok bureau:ok *:404",
    # periods: organization A's October, closed
    "GET /api/v1/billing/periods": FINANCE_OFFICERS,
    "POST /api/v1/billing/periods": ORGANIZATION_A_FINANCE,
    "GET /api/v1/billing/periods/{period_id}": "anonymous:401 logger:401 finance:ok bureau:ok *:404",
    # invoices: lab A's cost centre invoice; online payment: organization A's invoice to the company
    "GET /api/v1/billing/invoices": OWN,
    "GET /api/v1/billing/invoices/{invoice_id}": INVOICE_SEEN,
    "GET /api/v1/billing/invoices/{invoice_id}/pdf": INVOICE_SEEN,
    "GET /api/v1/billing/invoices/{invoice_id}/charges": INVOICE_SEEN,
    "GET /api/v1/billing/invoices/{invoice_id}/payments": INVOICE_SEEN,
    "POST /api/v1/billing/invoices/{invoice_id}/credit-notes": INVOICE_ISSUER_ACTION,
    "POST /api/v1/billing/invoices/{invoice_id}/transfers": INVOICE_ISSUER_ACTION,
    "POST /api/v1/billing/invoices/{invoice_id}/online-payment":
        "anonymous:401 logger:401 company_user:ok finance:403 bureau:403 *:404",  # Stripe off: the payer gets 409
    "GET /api/v1/billing/payments": OWN,
    "GET /api/v1/billing/export": FINANCE_OFFICERS,
    "GET /api/v1/billing/subsidies": FINANCE_OFFICERS,
    # vouchers
    "GET /api/v1/billing/vouchers": OWN,
    "POST /api/v1/billing/vouchers": "anonymous:401 logger:401 bureau:ok *:403",
    "GET /api/v1/billing/vouchers/{voucher_id}": VOUCHER_SEEN,
    "GET /api/v1/billing/vouchers/{voucher_id}/statement": VOUCHER_SEEN,
    "POST /api/v1/billing/vouchers/{voucher_id}/revoke": "anonymous:401 logger:401 company_user:403 finance:403 "
                                                         "bureau:ok *:404",
    # signed by Stripe, no caller identity: an unsigned event is 400 whoever sends it (Stripe configured here)
    "POST /api/v1/billing/stripe/webhook": "*:400",
    # oversight
    "GET /api/v1/oversight/statistics": OVERSIGHT_SCOPED,
    "GET /api/v1/oversight/statistics/monthly": OVERSIGHT_SCOPED,
    "GET /api/v1/oversight/charts/{key}": OVERSIGHT_SCOPED,
    "GET /api/v1/oversight/refreshes": OVERSIGHT_SCOPED,
    "GET /api/v1/oversight/refreshes/progress": OVERSIGHT_SCOPED,
    "POST /api/v1/oversight/refreshes": "anonymous:401 logger:401 manager:403 other_manager:403 finance:403 "
                                        "other_finance:403 bureau:ok *:404",
    "GET /api/v1/oversight/instruments/{instrument_id}/statistics": OVERSIGHT_OF_A,
    "GET /api/v1/oversight/organizations/{organization_id}/statistics": OVERSIGHT_OF_A,
    "GET /api/v1/oversight/labs/{lab_id}/statistics": OVERSIGHT_OF_A,
    "GET /api/v1/oversight/evaluation": EVALUATION_READERS,
    "GET /api/v1/oversight/exports": EVALUATION_READERS,
    "GET /api/v1/oversight/exports/{export_id}": "anonymous:401 logger:401 finance:ok bureau:ok *:404",
    "POST /api/v1/oversight/exports": "anonymous:401 logger:401 finance:403 bureau:ok *:404",
    "GET /api/v1/oversight/purchase-check": "anonymous:401 logger:401 manager:ok other_manager:ok bureau:ok *:404",
    "POST /api/v1/oversight/purchase-checks": "anonymous:401 logger:401 manager:ok bureau:ok *:404",
}


def operations() -> list[str]:
    schema = api.get_openapi_schema()
    return sorted(f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops)


def expected(row: str, role: str) -> str:
    rules = dict(item.split(":") for item in row.split())
    if role == "admin" and "admin" not in rules:
        role = "bureau"
    return rules.get(role, rules.get("*"))


def test_every_api_operation_has_a_row():
    missing = [operation for operation in operations() if operation not in MATRIX]
    assert missing == [], f"add these routes to the authorization matrix: {missing}"


def test_every_row_is_a_route_and_names_known_roles():
    assert sorted(set(MATRIX) - set(operations())) == []
    for operation, row in MATRIX.items():
        named = {item.split(":")[0] for item in row.split()}
        assert named <= {*ROLES, "*"}, operation
        assert all(expected(row, role) for role in ROLES), f"{operation}: a role without an answer"


# Schema-valid bodies and query strings, so that a request reaches the authorization check instead of
# stopping at 422.
def bodies(ids: dict) -> dict:
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=20)).replace(microsecond=0)
    return {
        "POST /api/v1/instruments/{instrument_id}/share-mode": {"share_mode": "internal"},
        "PUT /api/v1/instruments/{instrument_id}/opening-hours": {"rules": []},
        "POST /api/v1/instruments/{instrument_id}/opening-exceptions": {"date": start.date().isoformat()},
        "POST /api/v1/instruments/{instrument_id}/downtime": {
            "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(), "reason": "matrix"},
        "POST /api/v1/instruments/{instrument_id}/listing-requests": {"kind": "not_shared",
                                                                      "justification": "x" * 40},
        "POST /api/v1/instruments/{instrument_id}/qualifications": {"username": "other_researcher"},
        "POST /api/v1/listing-requests/{request_id}/decision": {"approve": False, "note": "matrix"},
        "POST /api/v1/instruments": {"lab": ids["lab_code"], "name_zh": "矩阵仪", "asset_number": "MATRIX-1",
                                     "category": "010102", "original_value": "100000.00"},
        "PATCH /api/v1/bookings/{booking_id}": {"start": start.isoformat(),
                                                "end": (start + dt.timedelta(hours=1)).isoformat()},
        "POST /api/v1/instruments/{instrument_id}/logger-tokens": {"name": "matrix"},
        "POST /api/v1/usage/flags/{flag_id}": {"decision": "accepted"},
        "POST /api/v1/service-records/{record_id}/rating": {"rating": 4},
        "POST /api/v1/bookings/{booking_id}/reject": {"reason": "matrix"},
        "POST /api/v1/bookings/{booking_id}/cancel": {"reason": "matrix"},
        "POST /api/v1/booking-series/{series_id}/cancel": {"scope": "all", "reason": "matrix"},
        "POST /api/v1/waitlist": {"instrument_id": ids["instrument_id"], "start": start.isoformat(),
                                  "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "matrix"},
        # billing
        "POST /api/v1/billing/accounts": {"kind": "project", "organization_id": ids["organization_id"],
                                          "number": "PRJ-MATRIX", "name": "Matrix", "pi_id": ids["user_id"]},
        "PATCH /api/v1/billing/accounts/{account_id}": {"name": "Renamed"},
        "POST /api/v1/billing/accounts/{account_id}/authorizations": {"user_id": ids["user_id"]},
        "POST /api/v1/billing/accounts/{account_id}/access-requests": {"note": "matrix"},
        "POST /api/v1/billing/access-requests/{authorization_id}/decide": {"approve": True},
        "POST /api/v1/billing/instruments/{instrument_id}/rate-cards": {
            "valid_from": "2098-01-01", "rates": [{"user_class": "internal", "unit": "hour", "price": "1.00"}]},
        "POST /api/v1/billing/charges/adjustments": {"account_id": ids["cost_centre_id"],
                                                     "instrument_id": ids["instrument_id"], "amount": "-1.00",
                                                     "reason": "matrix"},
        "POST /api/v1/billing/charges/{charge_id}/waive": {"reason": "matrix"},
        "POST /api/v1/billing/periods": {"organization_id": ids["organization_id"], "month": ids["month"]},
        "POST /api/v1/billing/invoices/{invoice_id}/credit-notes": {"reason": "matrix"},
        "POST /api/v1/billing/invoices/{invoice_id}/transfers": {"amount": "1.00", "reference": "matrix"},
        "POST /api/v1/billing/vouchers": {"company_id": ids["company_id"], "amount": "100", "share_percent": "40",
                                          "valid_from": "2026-01-01", "valid_until": "2026-12-31"},
        "POST /api/v1/billing/vouchers/{voucher_id}/revoke": {"reason": "matrix"},
        # submissions
        "PUT /api/v1/instruments/{instrument_id}/sample-service": {"turnaround_days": 5},
        "POST /api/v1/instruments/{instrument_id}/analyses": {"code": "MX2", "name_zh": "矩阵二"},
        "POST /api/v1/submissions": {"instrument_id": ids["instrument_id"], "sample_count": 1, "sample_type": "x",
                                     "sample_state": "solid", "analysis_ids": [1]},
        "POST /api/v1/submissions/receive": {"request_ids": [1]},
        "POST /api/v1/submissions/{request_id}/quote": {
            "items": [{"description": "x", "quantity": 1, "unit_price": "1.00"}], "valid_until": "2099-01-01"},
        "POST /api/v1/submissions/{request_id}/schedule": {"start": start.isoformat(),
                                                           "end": (start + dt.timedelta(hours=1)).isoformat()},
        "POST /api/v1/submissions/{request_id}/reject": {"reason": "matrix"},
        "POST /api/v1/submissions/{request_id}/rate": {"rating": 4},
        # oversight
        "POST /api/v1/oversight/exports": {"organization_id": ids["organization_id"], "period": "2025-Q4"},
        "POST /api/v1/oversight/purchase-checks": {"lab": ids["lab_id"], "category": "010102", "value": "600000"},
        "POST /api/v1/oversight/refreshes": {"year": 2025},
    }


def query_strings(ids: dict) -> dict:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {
        "GET /api/v1/instruments/{instrument_id}/availability": {
            "start": start.isoformat(), "end": (start + dt.timedelta(days=7)).isoformat()},
        "GET /api/v1/instruments/export": {"lab": ids["lab_code"]},
        "GET /api/v1/bookings/estimate": {"instrument_id": ids["instrument_id"], "start": start.isoformat(),
                                          "end": (start + dt.timedelta(hours=1)).isoformat()},
        "GET /api/v1/billing/accounts/{account_id}/statement": {"year": 2026},
        "GET /api/v1/billing/export": {"period": ids["month"]},
        "GET /api/v1/billing/subsidies": {"year": 2026},
        "GET /api/v1/oversight/purchase-check": {"category": "010102", "value": "600000"},
        "GET /api/v1/submissions/estimate": {"instrument_id": ids["instrument_id"], "sample_count": 1,
                                              "analysis_ids": [1]},
    }


# Settings a row is checked under.
ROW_SETTINGS = {
    "POST /api/v1/billing/stripe/webhook": {"STRIPE_SECRET_KEY": "sk_test_matrix",
                                            "STRIPE_WEBHOOK_SECRET": "whsec_matrix"},
}


def _path(operation: str, matrix) -> str:
    path = operation.split(" ", 1)[1]
    for name in matrix.ids:
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", str(matrix.value(name, path)))
    assert "{" not in path, f"no object for {path}"
    return path


def _headers(role: str, matrix) -> dict:
    if role == "anonymous":
        return {}
    token = matrix.logger if role == "logger" else matrix.tokens[role]
    return {"Authorization": f"Bearer {token}"}


def _request(client, method: str, path: str, *, body: str, params: dict | None, headers: dict):
    if method == "get":
        return client.get(path, data=params, headers=headers)
    return getattr(client, method)(path, data=body, content_type="application/json", headers=headers)


def _good(status: int, want: str) -> bool:
    if want == "ok":
        return status not in (401, 403, 404)
    return str(status) == want


@pytest.mark.parametrize("operation", sorted(MATRIX))
def test_each_role_gets_the_right_answer(operation, matrix, db, settings, tmp_path):
    settings.RATE_LIMIT_BOOKINGS = "100000/m"
    settings.RATE_LIMIT_EXPORTS = "100000/m"
    settings.OVERSIGHT_EXPORT_DIR = str(tmp_path)
    for name, value in ROW_SETTINGS.get(operation, {}).items():
        setattr(settings, name, value)
    method = operation.split(" ", 1)[0].lower()
    path = _path(operation, matrix)
    body = json.dumps(bodies(matrix.ids).get(operation, {}))
    params = query_strings(matrix.ids).get(operation)
    wrong = {}
    for role in ROLES:
        response = rolled_back(_request, matrix.client(), method, path, body=body, params=params,
                               headers=_headers(role, matrix))
        want = expected(MATRIX[operation], role)
        if not _good(response.status_code, want):
            wrong[role] = (response.status_code, want)
    assert wrong == {}, f"{operation}: {wrong}"


# Routes that take no session at all: Stripe signs its calls; a token is asked for with a password.
NO_SESSION = {"POST /api/v1/billing/stripe/webhook", "POST /api/v1/auth/token", "POST /api/v1/usage/events"}


@pytest.mark.parametrize("operation", sorted(op for op in MATRIX if not op.startswith("GET ")))
def test_a_session_write_without_the_csrf_token_is_refused(operation, matrix, db, settings):
    """The browser session authenticates API calls too; a write made with it must carry the CSRF token."""
    method = operation.split(" ", 1)[0].lower()
    path = _path(operation, matrix)
    body = json.dumps(bodies(matrix.ids).get(operation, {}))
    client = matrix.client("manager", enforce_csrf_checks=True)
    response = rolled_back(getattr(client, method), path, data=body, content_type="application/json")
    if operation in NO_SESSION:
        assert response.status_code != 403 or response.json().get("code") != "csrf_failed", operation
    else:
        assert (response.status_code, response.json().get("code")) == (403, "csrf_failed"), operation
