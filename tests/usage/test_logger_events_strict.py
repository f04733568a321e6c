"""The logger's events: a strict schema, only people the instrument knows, bounded sessions, and a
stop whose start never came flagged for review instead of silently ignored (issue 18, item 9)."""

import datetime as dt

import pytest

from tests.usage.test_usage import logger_client
from usage.models import ReviewFlag, UsageSession
from usage.services.reconcile import reconcile

pytestmark = pytest.mark.django_db
UTC = dt.UTC
AT = "2026-11-02T09:00:00+08:00"


def test_an_unknown_field_is_refused(world, instrument, api_as):
    logger = logger_client(world, instrument, api_as)
    response = logger.post("/usage/events", {"events": [
        {"event_id": "a", "type": "start", "session_id": "s", "at": AT, "price": "0"}]})
    assert response.status_code == 422
    assert "price" in response.json()["detail"]
    assert logger.post("/usage/events", {"events": [], "extra": 1}).status_code == 422


def test_a_user_the_instrument_does_not_know_is_refused_per_event(world, instrument, api_as):
    logger = logger_client(world, instrument, api_as)
    results = logger.post("/usage/events", {"events": [
        {"event_id": "a", "type": "start", "session_id": "s", "at": AT, "user": "other_manager"},
        {"event_id": "b", "type": "start", "session_id": "t", "at": AT, "user": "researcher"},
    ]}).json()
    assert [(r["status"], r["detail"][:35]) for r in results] == [
        ("error", "The instrument does not know a user"), ("created", "")]
    assert list(UsageSession.objects.values_list("external_ref", "user__username")) == [("t", "researcher")]


def test_a_session_longer_than_a_week_is_refused(world, instrument, api_as):
    logger = logger_client(world, instrument, api_as)
    response = logger.post("/usage/events", {"events": [
        {"event_id": "a", "type": "session", "session_id": "s", "start": AT, "end": "2026-11-10T09:00:00+08:00"}]})
    assert response.status_code == 422
    results = logger.post("/usage/events", {"events": [
        {"event_id": "b", "type": "start", "session_id": "s", "at": AT},
        {"event_id": "c", "type": "stop", "session_id": "s", "at": "2026-11-10T09:00:00+08:00"}]}).json()
    assert [r["status"] for r in results] == ["created", "error"]


def test_a_stop_without_a_start_becomes_a_review_flag_once(world, instrument, api_as, settings):
    settings.USAGE_OPEN_SESSION_LIMIT_HOURS = 12
    logger = logger_client(world, instrument, api_as)
    logger.post("/usage/events", {"events": [{"event_id": "a", "type": "stop", "session_id": "s", "at": AT}]})
    stop = dt.datetime(2026, 11, 2, 1, tzinfo=UTC)
    reconcile(since=stop - dt.timedelta(days=1), now=stop + dt.timedelta(hours=6))
    assert not ReviewFlag.objects.exists()  # the start may still be on its way
    for _run in range(2):
        reconcile(since=stop - dt.timedelta(days=1), now=stop + dt.timedelta(hours=13))
    flag = ReviewFlag.objects.get()
    assert (flag.kind, flag.session.external_ref, flag.instrument_id) == ("stop_no_start", "s", instrument.pk)
