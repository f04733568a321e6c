import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 20 + "a-production-secret-that-is-long-enough-and-random-1234567890",
    "ALLOWED_HOSTS": "instruments.example.cn",
    "DEBUG": "0",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_URL": "smtp://mail.example.cn:25",
    "DEFAULT_FROM_EMAIL": "InstrumentShare <noreply@instruments.example.cn>",
    "SITE_URL": "https://instruments.example.cn",
    "METRICS_TOKEN": "a-long-random-scraper-token-for-the-check",
}


def _manage(*args, env_extra=None):
    # The browser tests allow async-unsafe ORM calls in this process; a deployment never would.
    skip = {*PRODUCTION_ENV, "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update(env_extra or {})
    env["INSTRUMENTSHARE_VAR_DIR"] = str(ROOT / "var" / "check")
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_check_deploy_with_production_settings_reports_nothing():
    result = _manage("check", "--deploy", "--fail-level", "DEBUG", env_extra=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_requires_a_sender_of_our_own_and_the_public_address():
    env = {**PRODUCTION_ENV, "DEFAULT_FROM_EMAIL": "", "SITE_URL": ""}
    env = {key: value for key, value in env.items() if value}
    result = _manage("check", "--deploy", env_extra=env)
    assert result.returncode != 0
    assert "portal.E001" in result.stderr and "noreply@instrumentshare.local" in result.stderr
    assert "portal.E002" in result.stderr and "127.0.0.1:8000" in result.stderr


def test_check_deploy_refuses_public_metrics():
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "METRICS_TOKEN"}
    result = _manage("check", "--deploy", env_extra=env)
    assert result.returncode != 0
    assert "portal.E003" in result.stdout + result.stderr


def test_log_level_is_case_insensitive():
    result = _manage("shell", "-c", "import logging; print(logging.getLogger().level)",
                     env_extra={"LOG_LEVEL": "warning"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(30)


def test_task_limits_match_the_longest_task_and_redelivery_waits_minutes(settings):
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT < visibility <= 20 * 60


def test_embedded_default_is_sqlite_eager_celery_and_file_mail():
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.EMAIL_BACKEND, s.TIME_ZONE,"
        " s.LANGUAGE_CODE, s.DEBUG)"
    )
    result = _manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "django.db.backends.sqlite3", "True", "django.core.mail.backends.filebased.EmailBackend",
        "Asia/Shanghai", "zh-hans", "True",
    ]


@pytest.mark.django_db
def test_sqlite_runs_in_wal_with_immediate_transactions():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite-only settings; this run is on " + connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.django_db
def test_pages_render_in_both_languages(world):
    client = Client()
    client.force_login(world.manager)
    chinese = client.get("/", headers={"Accept-Language": "zh-hans"})
    assert "退出" in chinese.content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    english = client.get("/")
    assert "Log out" in english.content.decode()
    assert 'data-role="lab_manager"' in english.content.decode()


@pytest.mark.django_db
def test_navigation_follows_the_role(world):
    client = Client()
    client.force_login(world.researcher)
    page = client.get("/").content.decode()
    assert 'href="/api/v1/docs"' in page
    client.force_login(world.bureau)
    assert 'data-role="platform_admin"' in client.get("/").content.decode()


@pytest.mark.django_db
def test_login_page_logs_in_and_logout_needs_post(world):
    from tests.conftest import PASSWORD

    client = Client()
    response = client.post("/accounts/login/", {"username": "researcher", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/accounts/me/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405
    client.post("/accounts/logout/")
    assert client.get("/accounts/me/").status_code == 302


@pytest.mark.django_db
def test_token_page_shows_a_new_token_once(world):
    client = Client()
    client.force_login(world.researcher)
    page = client.post("/accounts/me/", {"name": "my script", "scope": "read"}).content.decode()
    assert 'data-testid="new-token"' in page and "ist_" in page
    again = client.get("/accounts/me/").content.decode()
    assert 'data-testid="new-token"' not in again and "my script" in again


@pytest.mark.django_db
def test_health_and_readiness():
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["checks"]["database"] == "ok"


def test_static_assets_are_vendored_not_fetched():
    templates = (ROOT / "portal" / "templates" / "base.html").read_text()
    assert "http://" not in templates and "https://" not in templates
    assert (ROOT / "instrumentshare/static/vendor/htmx/htmx.min.js").exists()
    assert (ROOT / "instrumentshare/static/vendor/pico/pico.min.css").exists()


@pytest.mark.django_db
def test_pages_carry_security_headers_and_a_strict_content_security_policy():
    response = Client().get("/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    script_src = policy.split("script-src")[1].split(";")[0]
    assert "'self'" in script_src and "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_json_answers_carry_a_policy_that_allows_nothing_and_pages_keep_theirs():
    api = Client().get("/api/v1/instruments")
    assert api.status_code == 200 and api["Content-Type"].startswith("application/json")
    assert api["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert api["X-Content-Type-Options"] == "nosniff"
    refused = Client().get("/api/v1/instruments/999999999/availability", {"start": "x", "end": "y"})
    assert refused.status_code == 422 and refused["Content-Security-Policy"].startswith("default-src 'none'")
    docs = Client().get("/api/v1/docs")  # the OpenAPI page is HTML: the page policy
    assert docs.status_code == 200 and "default-src 'self'" in docs["Content-Security-Policy"]


def test_no_template_uses_inline_event_handlers():
    import re

    offenders = []
    for path in [*ROOT.glob("*/templates/**/*.html"), *ROOT.glob("instrumentshare/*/templates/**/*.html")]:
        if re.search(r"\son(click|change|submit|load|input|keyup|keydown)=", path.read_text(encoding="utf-8")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], "inline handlers are blocked by the CSP; use data-autosubmit or a static script"


@pytest.mark.django_db
def test_metrics_count_requests_and_show_the_outbox():
    client = Client()
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    assert 'instrumentshare_http_requests_total{method="GET",route="healthz",status="200"}' in body
    assert "instrumentshare_outbox_pending 0.0" in body
    assert "instrumentshare_celery_queue_depth" in body


@pytest.mark.django_db
def test_favicon_and_the_home_page_search_box():
    client = Client()
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/x-icon"
    assert b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file
    home = client.get("/").content.decode()
    assert 'rel="icon"' in home
    assert 'role="search"' in home and 'action="/instruments/"' in home and 'name="q"' in home


def test_rundemo_serves_links_on_its_own_port_and_prints_the_logins_last(tmp_path):
    env = {"INSTRUMENTSHARE_VAR_DIR": str(tmp_path)}
    assert _manage("migrate", "--noinput", "-v", "0", env_extra=env).returncode == 0
    code = ("import threading, io; from django.core.management import call_command; from django.conf import settings;"
            "from unittest import mock;"
            "mock.patch('django.core.management.commands.runserver.Command.handle',"
            " lambda *a, **k: print('SITE_URL=' + settings.SITE_URL)).start();"
            "call_command('rundemo', '--port', '8765')")
    result = _manage("shell", "-c", code, env_extra=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "SITE_URL=http://127.0.0.1:8765" in lines[-1]
    assert "http://127.0.0.1:8765/" in result.stdout
    assert len(lines) < 40, result.stdout  # the URL and the logins table, little else
    assert "researcher" in result.stdout
