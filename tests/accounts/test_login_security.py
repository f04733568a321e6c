import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.real_password_hashing
def test_passwords_are_hashed_with_argon2(world):
    assert world.researcher.password.startswith("argon2")
    assert world.researcher.check_password(PASSWORD)


def test_repeated_wrong_passwords_lock_the_login_page(world, settings):
    client = Client()
    statuses = [client.post("/accounts/login/", {"username": "researcher", "password": "wrong"}).status_code
                for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the last failure locks
    locked = client.post("/accounts/login/", {"username": "researcher", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode() or "登录失败次数过多" in locked.content.decode()
    # another user from the same address is not locked out
    assert client.post("/accounts/login/", {"username": "manager", "password": PASSWORD}).status_code == 302


def test_repeated_wrong_passwords_lock_the_token_endpoint_with_429(world, settings):
    client = Client()
    statuses = [client.post("/api/v1/auth/token", {"username": "researcher", "password": "wrong"},
                            content_type="application/json").status_code
                for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses == [401] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    locked = client.post("/api/v1/auth/token", {"username": "researcher", "password": PASSWORD},
                         content_type="application/json")
    assert locked.status_code == 429
    assert locked.json()["code"] == "locked_out" and int(locked["Retry-After"]) > 0


def test_booking_creation_is_rate_limited_per_user(world, api_as, settings):
    settings.RATE_LIMIT_BOOKINGS = "3/m"
    api = api_as(world.researcher)
    statuses = [api.post("/bookings", {"instrument_id": 999, "start": "2026-12-01T09:00:00+08:00",
                                       "end": "2026-12-01T10:00:00+08:00", "purpose": "x"}).status_code
                for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    limited = api.post("/bookings", {"instrument_id": 999, "start": "2026-12-01T09:00:00+08:00",
                                     "end": "2026-12-01T10:00:00+08:00", "purpose": "x"})
    assert limited.json()["code"] == "rate_limited" and int(limited["Retry-After"]) >= 1
    # another user has their own budget
    assert api_as(world.other_researcher).post("/bookings", {"instrument_id": 999, "start": "2026-12-01T09:00:00+08:00",
                                                             "end": "2026-12-01T10:00:00+08:00",
                                                             "purpose": "x"}).status_code == 404
