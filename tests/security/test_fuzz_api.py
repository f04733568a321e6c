"""schemathesis walks every operation of /api/v1/openapi.json with generated input, as each role
(anonymous, researcher, lab manager, finance, bureau), with every one of its checks: no 5xx, every
status and content type documented, responses matching their schema, schema-invalid data refused,
schema-valid data accepted, authentication enforced.

One allowance, and a check of our own in its place: schema-valid data may still break a rule that
JSON Schema cannot state (an end before its start, an expiry in the past, a lab the manager must name,
a category that does not exist), which the API refuses with a 422 carrying the rule's own code. So
positive data acceptance takes 422 too, and ``refused_only_by_a_rule`` fails any such 422 that came
from parsing instead (the document said the value was fine and the parser did not: a wrong document)."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES

from instrumentshare.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
schema.config.checks.positive_data_acceptance.expected_statuses = [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
ROLES = ["anonymous", "researcher", "manager", "finance", "bureau"]
# Errors a custom validator raises (a date outside 2000..2100) and the string rule's refusal of a control
# character in a multipart field name (the document states the rule on values and JSON keys; a multipart
# field's name is the parser's to read): rules, not parsing.
RULE_ERRORS = {"value_error", "control_characters"}


@schemathesis.check
def refused_only_by_a_rule(ctx, response, case):
    """A schema-valid request refused with a 422 was refused by a business rule, not by parsing."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = json.loads(response.content or b"{}")
    parsing = [error for error in body.get("errors", []) if error.get("type") not in RULE_ERRORS]
    if parsing:
        raise AssertionError(f"schema-valid data refused by parsing, so the document is wrong: {parsing}")
    return None


@pytest.fixture
def in_test_transaction():
    """Serve the WSGI app inside the test's transaction, as Django's test client does."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(world, settings, in_test_transaction):
    """Objects the generated ids may hit, and a token per role."""
    from bookings import services as booking_services
    from instrumentshare.accounts.services import create_api_token
    from tests.bookings.conftest import make_instrument, next_weekday

    settings.RATE_LIMIT_BOOKINGS = "100000/m"
    settings.RATE_LIMIT_EXPORTS = "100000/m"
    instrument = make_instrument(world)
    start = next_weekday(1, 10)
    booking_services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                    end=start.replace(hour=12), purpose="fuzz")
    tokens = {role: create_api_token(user=getattr(world, role), name="fuzz")[1] for role in ROLES[1:]}
    return {"anonymous": {}, **{role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_operation_errors_for_any_role(case, fuzz_world):
    for role in ROLES:
        case.call_and_validate(headers=fuzz_world[role], additional_checks=[refused_only_by_a_rule])
