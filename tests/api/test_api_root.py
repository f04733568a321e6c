import json

import pytest
from django.test import Client

from instrumentshare.accounts.models import ApiToken
from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_docs_and_openapi_are_served():
    client = Client()
    assert client.get("/api/v1/docs").status_code == 200
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]
    assert "/api/v1/auth/token" in spec["paths"]


@pytest.mark.django_db
def test_a_token_is_issued_for_good_credentials_and_works(world):
    client = Client()
    response = client.post("/api/v1/auth/token", {"username": "researcher", "password": PASSWORD, "name": "script"},
                           content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("ist_") and body["name"] == "script"
    stored = ApiToken.objects.get(pk=body["id"])
    assert body["token"] not in (stored.digest, stored.prefix)  # only a digest is at rest
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "researcher"
    assert me.json()["roles"] == ["researcher"]
    assert me.json()["memberships"][0]["lab_code"] == "lab-a"


@pytest.mark.django_db
def test_wrong_credentials_are_401_with_a_json_body(world):
    response = Client().post("/api/v1/auth/token", {"username": "researcher", "password": "nope"},
                             content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


@pytest.mark.django_db
def test_roles_show_in_me(world, api_as):
    assert "lab_manager" in api_as(world.manager).get("/me").json()["roles"]
    assert "finance_officer" in api_as(world.finance).get("/me").json()["roles"]
    assert "platform_admin" in api_as(world.bureau).get("/me").json()["roles"]
    assert "company_user" in api_as(world.company_user).get("/me").json()["roles"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method,path,body,status,code",
    [
        ("get", "/api/v1/me", None, 401, "not_authenticated"),
        ("post", "/api/v1/me/tokens", {"name": "x"}, 401, "not_authenticated"),
        ("post", "/api/v1/auth/token", "{not json", 400, "bad_request"),
        ("post", "/api/v1/auth/token", {"username": 5}, 422, "invalid"),
        ("post", "/api/v1/auth/token", {"username": ["a"], "password": {"x": 1}}, 422, "invalid"),
        ("get", "/api/v1/no-such-route", None, 404, "not_found"),
    ],
)
def test_bad_requests_get_the_right_4xx_and_a_json_body(method, path, body, status, code):
    client = Client()
    if method == "get":
        response = client.get(path)
    else:
        raw = body if isinstance(body, str) else json.dumps(body)
        response = client.post(path, raw, content_type="application/json")
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    payload = response.json()
    assert payload["code"] == code and payload["detail"]


@pytest.mark.django_db
def test_wrong_types_and_unknown_ids_for_an_authenticated_caller(world, api_as):
    api = api_as(world.researcher)
    assert api.post("/me/tokens/not-a-number/revoke").status_code in (404, 422)
    response = api.post("/me/tokens/999999/revoke")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    response = api.post("/me/tokens", {"name": "", "scope": "root"})
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"body.payload.name", "body.payload.scope"} <= fields


@pytest.mark.django_db
def test_another_users_token_is_not_found_not_forbidden(world, api_as):
    created = api_as(world.researcher).post("/me/tokens", {"name": "mine"}).json()
    response = api_as(world.other_researcher).post(f"/me/tokens/{created['id']}/revoke")
    assert response.status_code == 404


@pytest.mark.django_db
def test_a_revoked_token_stops_working(world, api_as):
    api = api_as(world.researcher)
    created = api.post("/me/tokens", {"name": "short-lived"}).json()
    second = api_as(None)
    second.headers = {"Authorization": f"Bearer {created['token']}"}
    assert second.get("/me").status_code == 200
    assert api.post(f"/me/tokens/{created['id']}/revoke").json()["revoked_at"]
    assert second.get("/me").status_code == 401


@pytest.mark.django_db
def test_a_read_token_may_not_write(world, api_as):
    reader = api_as(world.researcher, scope="read")
    assert reader.get("/me").status_code == 200
    response = reader.post("/me/tokens", {"name": "escalate"})
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"


@pytest.mark.django_db
def test_a_session_post_without_csrf_is_refused_and_with_csrf_works(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.researcher)
    assert client.get("/api/v1/me").status_code == 200
    refused = client.post("/api/v1/me/tokens", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    client.get("/accounts/me/")  # a page sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/me/tokens", {"name": "x"}, content_type="application/json",
                           headers={"X-CSRFToken": token})
    assert accepted.status_code == 201


@pytest.mark.django_db
def test_every_response_carries_a_request_id():
    response = Client().get("/api/v1/me", headers={"X-Request-ID": "abcdef123456"})
    assert response["X-Request-ID"] == "abcdef123456"
    assert len(Client().get("/healthz")["X-Request-ID"]) == 32
