"""Hostile input, walked over every operation of the OpenAPI document and then every page: never a 5xx.

Each operation gets, as each role: every string of a schema-valid body and every query parameter
with a NUL in it; years 1 and 9999 for every moment; its ranges reversed and a hundred years long;
a malformed ``multipart/form-data`` body; a NUL in a path segment; and every status it answers must be
listed for it in the OpenAPI document. Then values that reached the
database before the rules (a downtime, a qualification expiry and a logger session in year 9999)
must not break any page, for any role, nor the hourly statistics refresh.

The rules themselves are in ``instrumentshare.core.input_rules`` (strings, bodies) and
``instrumentshare.core.time`` (moments); the tests at the end show their answers: 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.urls import reverse

from instrumentshare.api import api
from tests.security.matrix import rolled_back
from tests.security.test_authorization_matrix import _headers as api_headers
from tests.security.test_authorization_matrix import _path as api_path
from tests.security.test_authorization_matrix import bodies, query_strings
from tests.security.test_page_matrix import PAGES, pages
from tests.security.test_page_matrix import _path as page_path
from tests.security.test_page_matrix import query_strings as page_query_strings

# The owner sees the most operations through to their rules, an outsider and anonymous the refusals;
# the logger is the only caller of the usage events. (The authorization matrix walks every role.)
ROLES = ["anonymous", "researcher", "manager"]


def _roles(operation: str) -> list[str]:
    return ["logger"] if operation == "POST /api/v1/usage/events" else ROLES
MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}")
YEAR_1, YEAR_9999 = "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"
NUL = "a\x00b"
MALFORMED_MULTIPART = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nab"


def _schema():
    return api.get_openapi_schema()


def _operations() -> list[tuple[str, dict]]:
    return sorted((f"{method.upper()} {path}", spec) for path, ops in _schema()["paths"].items()
                  for method, spec in ops.items())


def _declared_query(spec: dict) -> dict[str, dict]:
    return {p["name"]: p.get("schema", {}) for p in spec.get("parameters", []) if p.get("in") == "query"}


def _documented(spec: dict, status: int) -> bool:
    return status in spec["responses"] or str(status) in spec["responses"]


def _is_moment_schema(schema: dict) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    return any(option.get("format") in ("date-time", "date") for option in options)


def _map_leaves(data, change):
    if isinstance(data, dict):
        return {key: _map_leaves(value, change) for key, value in data.items()}
    if isinstance(data, list):
        return [_map_leaves(value, change) for value in data]
    return change(data)


def _with_moments(data, moment: str):
    return _map_leaves(data, lambda v: moment if isinstance(v, str) and MOMENT.match(v) else v)


def _ranges(data: dict) -> list[dict]:
    """``data`` with its start/end (or free_from/free_to) reversed, and a hundred years long."""
    variants = []
    for first, last in (("start", "end"), ("free_from", "free_to"), ("valid_from", "valid_until")):
        if isinstance(data.get(first), str) and isinstance(data.get(last), str):
            variants.append({**data, first: data[last], last: data[first]})
            start = data[first]
            variants.append({**data, last: f"{int(start[:4]) + 100}{start[4:]}"})
    return variants


def _query_variants(operation: str, spec: dict, matrix) -> list[dict]:
    good = query_strings(matrix.ids).get(operation) or {}
    declared = _declared_query(spec)
    moments = {name for name, schema in declared.items() if _is_moment_schema(schema)}
    if moments and not good:
        now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        good = {name: (now + dt.timedelta(days=index)).isoformat() for index, name in enumerate(sorted(moments))}
    variants = [{**good, **{name: NUL for name in declared}}]
    for moment in (YEAR_1, YEAR_9999):
        variants.append({**good, **{name: moment for name in moments}})
    variants += _ranges(good)
    return variants


def _body_variants(operation: str, matrix) -> list[dict]:
    good = bodies(matrix.ids).get(operation) or {}
    variants = [_map_leaves(good, lambda v: NUL if isinstance(v, str) else v), {"x\x00": NUL}]
    variants += [_with_moments(good, YEAR_1), _with_moments(good, YEAR_9999)]
    if operation == "POST /api/v1/usage/events":
        variants += [{"events": [{"kind": "session", "start": YEAR_1, "end": YEAR_9999, "user": NUL}]},
                     {"events": [{"kind": "stop", "at": YEAR_9999}]}]
    return variants + _ranges(good)


def _send(client, method: str, path: str, headers: dict, *, params=None, body=None, multipart=False):
    if method == "get":
        return client.get(path, data=params, headers=headers)
    if multipart:
        return getattr(client, method)(path, data=MALFORMED_MULTIPART, headers=headers,
                                       content_type="multipart/form-data; boundary=xyz")
    return getattr(client, method)(path, data=json.dumps(body), headers=headers, content_type="application/json",
                                   QUERY_STRING="&".join(f"{k}={v}" for k, v in (params or {}).items()))


@pytest.fixture
def hostile_settings(settings, tmp_path):
    settings.RATE_LIMIT_BOOKINGS = "1000000/m"
    settings.RATE_LIMIT_EXPORTS = "1000000/m"
    settings.OVERSIGHT_EXPORT_DIR = str(tmp_path)
    settings.METRICS_TOKEN = "hostile-metrics-token"
    return settings


@pytest.mark.parametrize("operation", [name for name, _spec in _operations()])
def test_no_operation_answers_a_server_error_to_hostile_input(operation, matrix, db, hostile_settings):
    spec = dict(_operations())[operation]
    method, path = operation.split(" ", 1)[0].lower(), api_path(operation, matrix)
    errors = []
    for role in _roles(operation):
        client, headers = matrix.client(), api_headers(role, matrix)
        requests = [{"params": params} for params in _query_variants(operation, spec, matrix)
                    if method == "get" or _declared_query(spec)]
        if method != "get":
            requests += [{"body": body} for body in _body_variants(operation, matrix)]
            requests.append({"multipart": True})
        for request in requests:
            response = rolled_back(_send, client, method, path, headers, **request)
            if response.status_code >= 500:
                errors.append((role, request, response.status_code, response.content[:300]))
            elif not _documented(spec, response.status_code):
                errors.append((role, request, response.status_code, "not in the OpenAPI document"))
        broken = re.sub(r"/\d+(/|$)", "/%00\\1", path, count=1)
        if broken != path:
            response = rolled_back(_send, client, method, broken, headers, body={})
            if response.status_code >= 500:
                errors.append((role, broken, response.status_code))
    assert errors == []


# Values written before the rules existed, or by hand: every page must still show them.
FAR = dt.datetime(9999, 12, 31, 20, 0, tzinfo=dt.UTC)


@pytest.fixture
def far_future_rows(matrix):
    from catalog.models import Downtime, Qualification
    from usage.models import UsageSession

    instrument_id = matrix.ids["instrument_id"]
    Downtime.objects.filter(instrument_id=instrument_id).update(end=FAR)
    Qualification.objects.filter(pk=matrix.ids["qualification_id"]).update(expires_at=FAR)
    session = UsageSession.objects.filter(instrument_id=instrument_id).first()
    if session is None:
        session = _far_session(matrix)
    UsageSession.objects.filter(pk=session.pk).update(end=FAR)
    return session


def _far_session(matrix):
    from usage.models import UsageSession

    start = dt.datetime(2026, 11, 2, 2, tzinfo=dt.UTC)
    return UsageSession.objects.create(instrument_id=matrix.ids["instrument_id"], user=matrix.world.researcher,
                                       start=start, end=start + dt.timedelta(hours=1), source="logger")


@pytest.mark.parametrize("role", ["anonymous", "researcher", "other_researcher", "manager", "other_manager",
                                  "finance", "bureau", "admin"])
def test_no_page_answers_a_server_error_with_far_future_rows(role, matrix, db, hostile_settings, far_future_rows):
    errors = []
    queries = page_query_strings(matrix)
    for name in sorted(PAGES):
        if name == "accounts:logout":
            continue  # answers GET with 405 by design
        path = page_path(name, matrix)
        response = rolled_back(matrix.client(role).get, path, data=queries.get(name))
        if response.status_code >= 500:
            errors.append((name, path, response.status_code))
    assert errors == []
    assert pages()  # the page list is Django's own URL list, so a new page is walked too


def test_statistics_refresh_survives_a_far_future_session(matrix, db, far_future_rows):
    from oversight.services import refresh_statistics

    summary = refresh_statistics(year=2026, now=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert summary is not None


# The rules' answers, field by field.
def _token(matrix, role="researcher"):
    return {"Authorization": f"Bearer {matrix.tokens[role]}"}


def test_a_nul_in_a_body_field_is_a_422_naming_the_field(matrix, db, hostile_settings):
    start = dt.datetime(2026, 12, 20, 2, tzinfo=dt.UTC)
    body = {"instrument_id": matrix.ids["instrument_id"], "start": start.isoformat(),
            "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "x\x00y"}
    response = rolled_back(matrix.client().post, "/api/v1/bookings", data=body, content_type="application/json",
                           headers=_token(matrix))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.purpose"


def test_a_nul_in_a_query_parameter_or_the_login_is_a_422_naming_it(matrix, db, hostile_settings):
    response = matrix.client().get("/api/v1/instruments", data={"q": "\x00"})
    assert (response.status_code, response.json()["errors"][0]["field"]) == (422, "query.q")
    response = matrix.client().post("/api/v1/auth/token", data={"username": "a\x00", "password": "x"},
                                    content_type="application/json")
    assert (response.status_code, response.json()["errors"][0]["field"]) == (422, "body.username")


def test_tab_and_newline_stay_allowed_in_multi_line_text(matrix, db, hostile_settings):
    body = {"reason": "line one\n\tline two"}
    response = rolled_back(matrix.client().post, f"/api/v1/bookings/{matrix.ids['booking_id']}/cancel", data=body,
                           content_type="application/json", headers=_token(matrix))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("moment", [YEAR_1, YEAR_9999, "1999-12-31T00:00:00+00:00", "2101-01-01T00:00:00+00:00"])
def test_a_moment_outside_the_bounds_is_a_422_naming_the_field(moment, matrix, db, hostile_settings):
    body = {"instrument_id": matrix.ids["instrument_id"], "start": moment, "end": "2026-12-20T10:00:00+08:00",
            "purpose": "bounds"}
    response = rolled_back(matrix.client().post, "/api/v1/bookings", data=body, content_type="application/json",
                           headers=_token(matrix))
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["body.payload.start"]


def test_a_malformed_multipart_body_is_a_400(matrix, db, hostile_settings):
    response = matrix.client().post("/api/v1/auth/token", data=MALFORMED_MULTIPART,
                                    content_type="multipart/form-data; boundary=xyz")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_a_page_with_a_nul_in_its_query_is_a_400(matrix, db, hostile_settings):
    response = matrix.client().get(reverse("catalog:search"), data={"q": "\x00"})
    assert response.status_code == 400


def test_a_page_form_refuses_an_out_of_range_time(matrix, db, hostile_settings):
    client = matrix.client("manager")
    path = reverse("catalog:downtime", kwargs={"instrument_id": matrix.ids["instrument_id"]}) \
        if "catalog:downtime" in PAGES else None
    if path is None:
        pytest.skip("no downtime page")
    response = rolled_back(client.post, path, data={"start": "9999-12-31T10:00", "end": "9999-12-31T11:00",
                                                    "kind": "planned", "reason": "far"})
    assert response.status_code == 200
    assert "2100-12-31" in response.content.decode()


def test_the_control_character_rule_is_the_same_set_as_written_for_every_code_point():
    import re

    from instrumentshare.core.input_rules import (
        FORBIDDEN_CONTROL_CHARACTERS,
        NO_CONTROL_CHARACTERS,
        has_forbidden_characters,
    )

    schema_pattern = re.compile(NO_CONTROL_CHARACTERS)  # what the OpenAPI document tells clients
    for code in [*range(0x0, 0xD800), *range(0xE000, 0x10000), 0x10FFFF]:
        character = chr(code)
        forbidden = character in FORBIDDEN_CONTROL_CHARACTERS
        assert has_forbidden_characters(f"a{character}b") == forbidden, hex(code)
        assert (schema_pattern.match(f"a{character}b") is None) == forbidden, hex(code)
    assert not has_forbidden_characters("多行\t文本\r\n") and has_forbidden_characters("\x00")
