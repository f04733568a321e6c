"""``insert_rows``: tuples in, rows as the ORM would have written them, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.bulk import insert_rows
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db


def _event(seq: int, **extra) -> tuple:
    row = {"stream_key": "test:1", "seq": seq, "occurred_at": dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC),
           "action": "test", "target_type": "test", "target_id": "1", "before": None,
           "after": {"state": "done", "note": "中文"}, "prev_hash": "0" * 64, "hash": f"{seq:064d}", **extra}
    return tuple(row.values())


COLUMNS = ["stream_key", "seq", "occurred_at", "action", "target_type", "target_id", "before", "after", "prev_hash",
           "hash"]


def test_rows_read_back_with_types_json_and_defaults():
    count = insert_rows(AuditEvent, COLUMNS, [_event(1), _event(2)])
    assert count == 2
    events = list(AuditEvent.objects.filter(stream_key="test:1").order_by("seq"))
    assert [event.seq for event in events] == [1, 2]
    assert events[0].occurred_at == dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
    assert events[0].after == {"state": "done", "note": "中文"}
    assert events[0].before is None
    # Columns not given get the field's default, as Model() would.
    assert events[0].reason == "" and events[0].actor_id is None and events[0].actor_repr == ""
    # The timestamp compares correctly in SQL (stored in the backend's own form, not as offset text).
    assert AuditEvent.objects.filter(occurred_at__gte=dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)).count() == 2
    assert AuditEvent.objects.filter(occurred_at__gt=dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)).count() == 0


def test_conflicting_rows_are_skipped_only_when_asked():
    from django.db import IntegrityError, transaction

    insert_rows(AuditEvent, COLUMNS, [_event(1)])
    written = insert_rows(AuditEvent, COLUMNS, [_event(1), _event(3)], ignore_conflicts=True)
    assert written == 2
    assert list(AuditEvent.objects.filter(stream_key="test:1").order_by("seq").values_list("seq", flat=True)) == [1, 3]
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(AuditEvent, COLUMNS, [_event(1)])


def test_a_required_column_without_default_is_refused():
    from usage.models import ReviewFlag

    with pytest.raises(ValueError, match="instrument"):
        insert_rows(ReviewFlag, ["kind"], [("overrun",)])


@requires_postgres
def test_array_literals_round_trip_any_text_and_integers():
    from django.db import connection

    from instrumentshare.core.bulk import pg_array

    texts = ["bookings.booking:1", "", "NULL", 'say "hi"', "back\\slash\\", "a,b", "{braces}", " spaced ",
             "多语言 ✓", "tab\tand\nnewline", "'single'"]
    numbers = [0, -1, 2**62, 7]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[], %s::bigint[], %s::bigint[]",
                       [pg_array(texts), pg_array(numbers), pg_array([])])
        assert cursor.fetchone() == (texts, numbers, [])
