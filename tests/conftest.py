"""Shared fixtures: a small world of named people who do and don't own the data.

- ``researcher``: member of lab A (organization A)
- ``other_researcher``: member of lab B (organization B)
- ``manager``: manager of lab A;  ``other_manager``: manager of lab B
- ``finance``: finance officer of organization A;  ``other_finance``: of organization B
- ``company_user``: works for a company (organization C)
- ``bureau``: platform administrator
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client

from instrumentshare.accounts import services
from instrumentshare.accounts.models import Lab, Organization, User

PASSWORD = "correct-horse-battery"

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql",
                                                   "instrumentshare.core.postgresql")
HAS_REDIS = bool(settings.REDIS_URL)

_skip_without_postgres = pytest.mark.skipif(
    not IS_POSTGRES, reason="needs PostgreSQL: runs in make test's second part (tests/with_postgres.py) and in "
                            ".ci/run; or set DATABASE_URL=postgres://..."
)


def requires_postgres(test):
    """Marks a test ``postgres`` (``make test`` runs those on a throwaway server) and skips it, with the
    reason, on the embedded default."""
    return pytest.mark.postgres(_skip_without_postgres(test))
requires_redis = pytest.mark.skipif(not HAS_REDIS, reason="needs Redis: set REDIS_URL=redis://... (runs in .ci/run)")


@dataclass
class World:
    org_a: Organization
    org_b: Organization
    company: Organization
    lab_a: Lab
    lab_b: Lab
    researcher: User
    other_researcher: User
    manager: User
    other_manager: User
    finance: User
    other_finance: User
    company_user: User
    bureau: User


def _user(username: str, organization: Organization | None, **extra) -> User:
    return services.create_user(
        actor=None, username=username, password=PASSWORD, email=f"{username}@example.org",
        full_name=username.replace("_", " ").title(), organization=organization, **extra,
    )


@pytest.fixture
def world(db) -> World:
    return build_world()


def build_world() -> World:
    """The named people and their organizations and labs (the ``world`` fixture; callable where a
    fixture cannot be, e.g. to build once for a whole module)."""
    org_a = services.create_organization(actor=None, name_zh="甲大学", name_en="University A", kind="university")
    org_b = services.create_organization(actor=None, name_zh="乙研究所", name_en="Institute B", kind="institute")
    company = services.create_organization(actor=None, name_zh="丙公司", name_en="Company C", kind="company")
    lab_a = services.create_lab(actor=None, organization=org_a, code="lab-a", name_zh="甲实验室", name_en="Lab A")
    lab_b = services.create_lab(actor=None, organization=org_b, code="lab-b", name_zh="乙实验室", name_en="Lab B")
    people = {
        "researcher": _user("researcher", org_a),
        "other_researcher": _user("other_researcher", org_b),
        "manager": _user("manager", org_a),
        "other_manager": _user("other_manager", org_b),
        "finance": _user("finance", org_a),
        "other_finance": _user("other_finance", org_b),
        "company_user": _user("company_user", company),
        "bureau": _user("bureau", None, is_platform_admin=True),
    }
    services.set_membership(actor=None, lab=lab_a, user=people["researcher"], role="member")
    services.set_membership(actor=None, lab=lab_b, user=people["other_researcher"], role="member")
    services.set_membership(actor=None, lab=lab_a, user=people["manager"], role="manager")
    services.set_membership(actor=None, lab=lab_b, user=people["other_manager"], role="manager")
    services.grant_finance_role(actor=None, organization=org_a, user=people["finance"])
    services.grant_finance_role(actor=None, organization=org_b, user=people["other_finance"])
    return World(org_a=org_a, org_b=org_b, company=company, lab_a=lab_a, lab_b=lab_b, **people)


class ApiClient:
    """The Django test client speaking JSON with a Bearer token."""

    def __init__(self, token: str | None = None):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, data=None, **kwargs):
        path = path if path.startswith("/api/") else f"/api/v1{path}"
        body = kwargs.pop("raw", None)
        if body is None and data is not None:
            import json

            body = json.dumps(data, default=str)
        handler = getattr(self.client, method)
        if method == "get":
            return handler(path, data=data, headers=self.headers)
        return handler(path, data=body, content_type="application/json", headers=self.headers)

    def get(self, path, params=None):
        return self._call("get", path, params)

    def post(self, path, data=None, **kwargs):
        return self._call("post", path, data, **kwargs)

    def patch(self, path, data=None, **kwargs):
        return self._call("patch", path, data, **kwargs)

    def put(self, path, data=None, **kwargs):
        return self._call("put", path, data, **kwargs)

    def delete(self, path, data=None, **kwargs):
        return self._call("delete", path, data, **kwargs)


@pytest.fixture
def api_as():
    """``api_as(user)`` gives a JSON client authenticated with a fresh token of that user."""

    def make(user: User | None, scope: str = "write") -> ApiClient:
        if user is None:
            return ApiClient()
        _token, plain = services.create_api_token(user=user, name="test", scope=scope)
        return ApiClient(plain)

    return make


@pytest.fixture(autouse=True)
def _fast_password_hashing(request, settings):
    """Argon2 is slow on purpose; tests that are not about passwords use a fast hasher."""
    if "real_password_hashing" not in request.keywords:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield


@pytest.fixture(autouse=True)
def _tasks_in_process(request):
    """Tasks run in-process (eagerly) so a test sees their effects, also when REDIS_URL is set;
    tests marked ``celery_worker`` send them to a real worker process instead."""
    from instrumentshare.celery import app

    if "celery_worker" in request.keywords:
        yield
        return
    saved = {key: app.conf[key] for key in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and other cached state never leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _audit_triggers_allow_flush(request):
    """Keep the append-only triggers on during every test, off only for the test database flush.

    A transactional test (real commits, a live server) ends with Django emptying every table,
    which the triggers rightly refuse; they are dropped just before and put back for the next
    test. Production databases never flush.
    """
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    uses_db = marker is not None or names & {"db", "transactional_db", "live_server", "django_db_setup"}
    transactional = (marker is not None and marker.kwargs.get("transaction")) or names & {
        "transactional_db", "live_server"}
    if not uses_db:
        yield
        return
    from django.db import connection

    from instrumentshare.audit import triggers

    request.getfixturevalue("transactional_db" if transactional else "db")
    triggers.execute(connection, triggers.create_statements(connection.vendor))
    yield
    if transactional:
        triggers.execute(connection, triggers.drop_statements(connection.vendor))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not os.path.exists(path):
        pytest.skip(f"Debian's chromium is not installed at {path} (make test installs it where it may)")
    return path


def database_url_for_subprocess() -> str:
    """The URL of the *test* database, for a worker or server started as another process."""
    from django.db import connection

    data = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{data['NAME']}"
    user = data.get("USER") or "postgres"
    password = f":{data['PASSWORD']}" if data.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{data.get('HOST') or '127.0.0.1'}:{data.get('PORT') or 5432}/{data['NAME']}"


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """``start_worker()`` runs a real Celery worker process on Redis against the test database."""
    import subprocess

    from celery._state import _set_task_join_will_block

    # This process is never a worker, but Celery keeps "a task is running here" in one global that
    # an eager task in another thread (an earlier test's concurrent bookings) can leave set; the
    # tests below wait on their results with ``.get()``.
    _set_task_join_will_block(False)
    import sys
    import time
    import uuid

    if not HAS_REDIS:
        pytest.skip("needs Redis: set REDIS_URL=redis://... (runs in .ci/run)")
    processes = []

    def start(*, queue: str | None = None, extra_env: dict | None = None):
        from instrumentshare.celery import app

        queue = queue or f"test-{uuid.uuid4().hex[:8]}"
        log = tmp_path / f"worker-{queue}.log"
        env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), **(extra_env or {})}
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "instrumentshare", "worker", "--pool=solo", "-Q", queue,
             "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "-l", "info"],
            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=1)
            if replies:
                break
            if process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log.read_text()}")
        else:
            raise RuntimeError(f"worker did not answer within 60 s:\n{log.read_text()}")
        process.queue = queue
        process.log = log
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except Exception:  # noqa: BLE001
                process.kill()
