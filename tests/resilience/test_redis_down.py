"""Redis goes down (a real redis-server of the test's own, on a port of its own, stopped mid-test):
bookings and cancellations still work within normal latency, the rate limiter counts per process and
says so in the log, the invitations wait in the outbox and go out once Redis is back, and a page that
really needs the cache answers 503 with Retry-After -- never a 500.

The machine's shared Redis is never touched; without a redis-server binary the test is skipped.
"""

import datetime as dt
import logging
import os
import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.core import mail
from django.core.cache import caches

from bookings.models import Notification
from bookings.services import notifications
from instrumentshare.celery import app
from tests.bookings.conftest import next_weekday

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")]

# A request with Redis down must take about as long as one with it up, not the ~19 s of broker retries.
NORMAL_LATENCY = 3.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _service_env() -> dict:
    """The environment of a service the test starts: the machine's real clock. Under a faked clock
    (libfaketime's LD_PRELOAD, as in ``make test-at``) redis-server does not start at all."""
    return {key: value for key, value in os.environ.items()
            if key != "LD_PRELOAD" and not key.startswith("FAKETIME")}


@pytest.fixture
def own_redis(tmp_path):
    port = _free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_service_env())
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.5)
    for _ in range(100):
        try:
            if probe.ping():
                break
        except redis.RedisError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"the test's own redis-server did not answer on port {port} (exit code {process.poll()})")
    yield process, url
    probe.close()
    process.terminate()
    process.wait(timeout=10)


def _fresh_producer_pool():
    from kombu import pools

    pools.reset()
    app._pool = None  # noqa: SLF001 - Celery keeps these private; a test must not leak them
    app.amqp._producer_pool = None  # noqa: SLF001


@pytest.fixture
def on_own_redis(own_redis, settings):
    process, url = own_redis
    settings.CACHES = {"default": {"BACKEND": "instrumentshare.core.cache.RedisCache", "LOCATION": url,
                                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1}}}
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=url)  # publish retries stay at Celery's default
    _fresh_producer_pool()
    yield process
    app.conf.update(saved)
    _fresh_producer_pool()
    caches["default"].close()


def _book(client, instrument, start):
    began = time.monotonic()
    response = client.post("/bookings", {"instrument_id": instrument.pk, "start": start.isoformat(),
                                         "end": (start + dt.timedelta(hours=1)).isoformat(), "purpose": "outage"})
    return response, time.monotonic() - began


def test_bookings_go_on_with_redis_down_and_the_limiter_counts_per_process(
        world, instrument, api_as, on_own_redis, settings, caplog, django_capture_on_commit_callbacks):
    settings.RATE_LIMIT_BOOKINGS = "3/m"
    client = api_as(world.researcher)
    start = next_weekday(1, 8)
    with django_capture_on_commit_callbacks(execute=True):
        response, _took = _book(client, instrument, start)
    assert response.status_code == 201  # Redis up: counted in Redis, not in the process
    pipe, key = caches["default"].pipeline(f"throttle_rate_limit_bookings_user-{world.researcher.pk}:window")
    assert pipe.zcard(key).execute() == [1]   # the request's time, in the sorted set of its window
    assert "counting per process" not in caplog.text
    on_own_redis.terminate()
    on_own_redis.wait(timeout=10)
    answers = []
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        for hour in (1, 2, 3):
            response, took = _book(client, instrument, start + dt.timedelta(hours=2 * hour))
            answers.append(response.status_code)
            assert took < NORMAL_LATENCY, f"a booking took {took:.1f} s with Redis down"
        booking_id = client.get("/bookings").json()["items"][0]["id"]
        began = time.monotonic()
        cancelled = client.post(f"/bookings/{booking_id}/cancel", {"reason": "outage"})
        assert time.monotonic() - began < NORMAL_LATENCY
    # The process's own budget (3 a minute) applies from a fresh count: three more, then a 429.
    assert answers[:3] == [201, 201, 201]
    assert cancelled.status_code == 200
    assert _book(client, instrument, start + dt.timedelta(hours=9))[0].status_code == 429
    assert "counting per process" in caplog.text
    assert "could not queue the outbox sweep" in caplog.text and "the beat's sweep sends the rows" in caplog.text
    assert Notification.objects.filter(state="pending").count() == 5  # nothing lost: all wait in the outbox
    # Redis is back (or never needed for mail): the sweep sends each once; the cancelled booking's
    # invitation is not sent after its cancellation.
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 4
    assert notifications.sweep_outbox(older_than=dt.timedelta(0)) == 0
    assert not Notification.objects.filter(state="pending").exists()
    assert len(mail.outbox) == 4


def test_a_page_that_needs_the_cache_answers_503_with_retry_after(world, client, on_own_redis):
    on_own_redis.terminate()
    on_own_redis.wait(timeout=10)
    client.force_login(world.bureau)
    response = client.get("/oversight/")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
