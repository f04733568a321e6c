"""The authorization matrix, walked from the API's own route list.

Every operation of /api/v1 must have a row here, so a new route without one fails this test.
A row says what each role gets. ``ok`` means the request passed authorization (any status but
401, 403 and 404: an empty body then gives 422, a repeated action 409…); a number is the
status expected. ``*`` is every role the row does not name. The same matrix, in words, is in
README.md ("Who may do what"). Object routes point at objects owned by ``researcher`` in lab A
(managed by ``manager``, organization A with ``finance``); the other people are outsiders.
"""

from __future__ import annotations

import datetime as dt

import pytest

from instrumentshare.api import api

ROLES = ["anonymous", "logger", "researcher", "other_researcher", "manager", "other_manager", "finance",
         "other_finance", "company_user", "bureau"]

PUBLIC = "*:ok"
PUBLIC_BAD_TOKEN_401 = "logger:401 *:ok"  # open to all, but a token that is not an API token is refused
SIGNED_IN = "anonymous:401 logger:401 *:ok"
OWN = "anonymous:401 logger:401 *:ok"  # /me routes: everyone acts on their own objects
BOOKING_SEEN = "anonymous:401 logger:401 researcher:ok manager:ok bureau:ok *:404"
BOOKING_LAB_ACTION = "anonymous:401 logger:401 researcher:403 manager:ok bureau:403 *:404"
BOOKING_BOOKER_ACTION = "anonymous:401 logger:401 researcher:ok manager:403 bureau:403 *:404"
BOOKING_CANCEL = "anonymous:401 logger:401 researcher:ok manager:ok bureau:403 *:404"
CHECK_IN_OUT = "anonymous:401 logger:401 researcher:ok *:404"
LAB_MANAGER_OF_INSTRUMENT = "anonymous:401 logger:401 manager:ok *:404"
LOGGER_ONLY = "logger:ok *:401"

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
    "POST /api/v1/instruments": SIGNED_IN,
    "POST /api/v1/instruments/import": SIGNED_IN,
    "GET /api/v1/instruments/export": SIGNED_IN,
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
    "POST /api/v1/listing-requests/{request_id}/decision": "anonymous:401 logger:401 bureau:ok *:ok403404",
    "GET /api/v1/instruments/{instrument_id}/qualifications": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/qualifications": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/qualifications/{qualification_id}/revoke": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/instruments/{instrument_id}/training-requests": SIGNED_IN,
    "GET /api/v1/instruments/{instrument_id}/training-requests": "anonymous:401 logger:401 manager:ok *:403",
    "POST /api/v1/training-requests/{training_request_id}/decline": "anonymous:401 logger:401 manager:ok *:403",
    # the bureau sees every organization; lab managers and finance their own; researchers nothing
    "GET /api/v1/compliance": "anonymous:401 logger:401 researcher:403 other_researcher:403 company_user:403 *:ok",
    # bookings
    "POST /api/v1/bookings": SIGNED_IN,
    "GET /api/v1/bookings": SIGNED_IN,
    "GET /api/v1/bookings/{booking_id}": BOOKING_SEEN,
    "PATCH /api/v1/bookings/{booking_id}": BOOKING_BOOKER_ACTION,
    "POST /api/v1/bookings/{booking_id}/cancel": BOOKING_CANCEL,
    "POST /api/v1/bookings/{booking_id}/approve": BOOKING_LAB_ACTION,
    "POST /api/v1/bookings/{booking_id}/reject": BOOKING_LAB_ACTION,
    "GET /api/v1/instruments/{instrument_id}/availability": PUBLIC,
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
}
# Billing and oversight scope every object by role in their own tests (tests/billing, tests/oversight);
# here every one of their routes must at least refuse anonymous callers and logger tokens.
SIGNED_IN_PREFIXES = ("/api/v1/billing/", "/api/v1/oversight/")
PUBLIC_EXCEPTIONS = {
    "GET /api/v1/billing/instruments/{instrument_id}/rate-cards": PUBLIC,
    "GET /api/v1/billing/instruments/{instrument_id}/fee-standard": PUBLIC,
    "POST /api/v1/billing/stripe/webhook": "*:ok400",  # signed by Stripe, no caller identity
}


def operations() -> list[str]:
    schema = api.get_openapi_schema()
    return sorted(f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops)


def row_for(operation: str) -> str | None:
    if operation in MATRIX:
        return MATRIX[operation]
    if operation in PUBLIC_EXCEPTIONS:
        return PUBLIC_EXCEPTIONS[operation]
    if operation.split(" ", 1)[1].startswith(SIGNED_IN_PREFIXES):
        return SIGNED_IN
    return None


def expected(row: str, role: str) -> str:
    rules = dict(item.split(":") for item in row.split())
    return rules.get(role, rules.get("*"))


def test_every_api_operation_has_a_row():
    missing = [operation for operation in operations() if row_for(operation) is None]
    assert missing == [], f"add these routes to the authorization matrix: {missing}"


@pytest.fixture
def targets(world, django_capture_on_commit_callbacks):
    """One object of each kind, owned by the researcher in lab A."""
    from bookings import services as booking_services
    from bookings import usage
    from bookings.feeds import create_feed_token
    from bookings.models import BillableItem, ReviewFlag, ServiceRecord
    from catalog import services as catalog_services
    from instrumentshare.accounts.services import create_api_token
    from tests.bookings.conftest import make_instrument, next_weekday

    instrument = make_instrument(world, policy={"approval": "all"})
    start = next_weekday(1, 10)
    booking = booking_services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                              end=start + dt.timedelta(hours=1), purpose="matrix")
    logger_token, logger_plain = usage.create_logger_token(actor=world.manager, instrument_id=instrument.pk,
                                                           name="PC")
    downtime = catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk,
                                             start=start + dt.timedelta(days=1), end=start + dt.timedelta(days=1,
                                                                                                      hours=1),
                                             kind="planned", reason="service")
    qualification = catalog_services.grant_qualification(actor=world.manager, instrument_id=instrument.pk,
                                                         user=world.researcher)
    training = catalog_services.request_training(actor=world.other_researcher, instrument_id=instrument.pk)
    item = BillableItem.objects.create(booking=booking, instrument=instrument, user=world.researcher,
                                       is_internal=True, kind="booking", charge_mode="booked", unit="hour",
                                       quantity=60, service_start=booking.start, service_end=booking.end)
    record = ServiceRecord.objects.create(item=item, instrument=instrument, user=world.researcher,
                                          is_internal=True, start=booking.start, end=booking.end, hours=1)
    flag = ReviewFlag.objects.create(instrument=instrument, booking=booking, kind="overrun")
    from catalog.models import ListingChangeRequest

    listing = ListingChangeRequest.objects.create(instrument=instrument, kind="unpublish", requested_by=world.manager,
                                                  justification="x" * 30)
    return {
        "booking_id": booking.pk, "instrument_id": instrument.pk, "downtime_id": downtime.pk,
        "qualification_id": qualification.pk, "training_request_id": training.pk, "flag_id": flag.pk,
        "record_id": record.pk, "request_id": listing.pk,
        "token_id": {"logger-tokens": logger_token.pk,
                     "me/tokens": create_api_token(user=world.researcher, name="victim")[0].pk},
        "feed_id": create_feed_token(user=world.researcher)[0].pk,
        "logger": logger_plain,
    }


# Schema-valid bodies, so that a request reaches the authorization check instead of stopping at 422.
def bodies(targets: dict) -> dict:
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
        "PATCH /api/v1/bookings/{booking_id}": {"start": start.isoformat(),
                                                "end": (start + dt.timedelta(hours=1)).isoformat()},
        "POST /api/v1/instruments/{instrument_id}/logger-tokens": {"name": "matrix"},
        "POST /api/v1/usage/flags/{flag_id}": {"decision": "accepted"},
        "POST /api/v1/service-records/{record_id}/rating": {"rating": 4},
        "POST /api/v1/bookings/{booking_id}/reject": {"reason": "matrix"},
        "POST /api/v1/bookings/{booking_id}/cancel": {"reason": "matrix"},
    }


def _path(operation: str, targets: dict) -> str:
    path = operation.split(" ", 1)[1]
    for name, value in targets.items():
        if isinstance(value, dict):
            value = next((v for key, v in value.items() if key in path), 0)
        path = path.replace("{" + name + "}", str(value))
    return path


CHECKED = [operation for operation in MATRIX]


@pytest.mark.django_db
@pytest.mark.parametrize("operation", CHECKED)
def test_each_role_gets_the_right_answer(operation, world, targets, settings):
    from django.test import Client

    from instrumentshare.accounts.services import create_api_token

    settings.RATE_LIMIT_BOOKINGS = "100000/m"
    method, _template = operation.split(" ", 1)
    path = _path(operation, targets)
    import json

    body = json.dumps(bodies(targets).get(operation, {}))
    outcomes = {}
    for role in ROLES:
        if role == "anonymous":
            headers = {}
        elif role == "logger":
            headers = {"Authorization": f"Bearer {targets['logger']}"}
        else:
            headers = {"Authorization": f"Bearer {create_api_token(user=getattr(world, role), name='m')[1]}"}
        if method == "GET":
            response = Client().get(path, headers=headers)
        else:
            response = getattr(Client(), method.lower())(path, data=body, content_type="application/json",
                                                         headers=headers)
        outcomes[role] = response.status_code
    wrong = {}
    for role, status in outcomes.items():
        want = expected(MATRIX[operation], role)
        if want == "ok":
            good = status not in (401, 403, 404)
        elif want.startswith("ok"):
            good = status not in (401, 403, 404) or str(status) in want
        else:
            good = str(status) == want
        if not good:
            wrong[role] = (status, want)
    assert wrong == {}, f"{operation}: {wrong}"
