"""A batch's events hash to the same bytes as one event recorded alone.

``record_many`` writes the canonical JSON of 10^4 events in pieces (the batch's shared fields
once, the rest by the encoder ``json.dumps`` uses); ``verify`` recomputes every hash with
``canonical_json``. These tests hold the two equal for any values a caller can pass, and the
stored rows equal to what ``record`` stores.
"""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instrumentshare.audit import services
from instrumentshare.audit.models import AuditEvent

text = st.text(max_size=40)  # any code point, quotes, backslashes, control characters, CJK, surrogates
scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63), text)
plain = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(text, inner, max_size=3)), max_leaves=8)
documents = st.one_of(st.none(), st.dictionaries(text, plain, max_size=4))


def _encodable(*values) -> bool:
    try:
        for value in values:
            services.canonical_json(value).encode()
    except UnicodeEncodeError:
        return False  # a lone surrogate: neither path can hash it, and neither stores it
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=text, seq=st.integers(min_value=1, max_value=2**62), actor_id=st.one_of(st.none(), st.integers(1, 2**40)),
       actor_repr=text, request_id=text, action=text, target_type=text, target_id=text, target_repr=text,
       before=documents, after=documents, reason=text, prev_hash=text,
       moment=st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9999, 12, 30),
                           timezones=st.just(dt.UTC)))
def test_the_pieces_are_canonical_json(key, seq, actor_id, actor_repr, request_id, action, target_type, target_id,
                                       target_repr, before, after, reason, prev_hash, moment):
    row = {"stream_key": key, "seq": seq, "occurred_at": moment, "actor_id": actor_id, "actor_repr": actor_repr,
           "request_id": request_id, "action": action, "target_type": target_type, "target_id": target_id,
           "target_repr": target_repr, "before": before, "after": after, "reason": reason, "prev_hash": prev_hash}
    template = services._batch_encoder({"occurred_at": services.format_time(moment), "actor_id": actor_id,
                                         "actor_repr": actor_repr, "request_id": request_id, "action": action,
                                         "reason": reason})
    varying = {"stream_key": key, "seq": seq, "target_type": target_type, "target_id": target_id,
               "target_repr": target_repr, "before": services.canonical_json(before),
               "after": services.canonical_json(after), "prev_hash": prev_hash}
    pieces = template % tuple(varying[name] if name in ("before", "after", "seq") else services._scalar_json(
        varying[name]) for name in services.BATCH_VARYING)
    whole = {name: row[name] for name in services.HASHED_FIELDS} | {"occurred_at": services.format_time(moment)}
    assert pieces == services.canonical_json(whole)
    if _encodable(row["target_repr"], before, after, key, actor_repr, action, reason, prev_hash):
        assert services.event_hash(row) == services.hashlib.sha256(pieces.encode()).hexdigest()


@pytest.mark.django_db
def test_a_batch_stores_what_single_records_store():
    """The same events through ``record`` and ``record_many``: equal rows and hashes, and the chain verifies
    (shared before/after dicts, per-entry dicts, None, nested and non-ASCII values, a value needing
    normalisation)."""
    now = dt.datetime(2026, 12, 4, 3, tzinfo=dt.UTC)
    shared = {"before": {"state": "confirmed"}, "after": {"state": "completed"}}
    entries = [{"target": ("thing", n), **shared} for n in range(3)]
    entries += [{"target": ("thing", 3), "before": None, "after": {"note": "数据 \"引号\" \\ \x07", "n": [1, None]}},
                {"target": ("thing", 4), "before": {"at": now, "amount": services.Decimal("1.50")}, "after": None},
                {"target": ("thing", 5)}]
    for n in range(6):  # an earlier event on half the streams: the batch chains to existing heads too
        if n % 2:
            services.record(actor=None, action="thing.made", target=("thing", n), after={"n": n}, now=now)
    services.record_many(actor=None, action="thing.settled", entries=entries, reason="月末", now=now)
    batch = {event.target_id: event for event in AuditEvent.objects.filter(action="thing.settled")}
    assert len(batch) == 6
    for entry in entries:
        event = batch[str(entry["target"][1])]
        assert event.before == services.to_json_value(entry.get("before"))
        assert event.after == services.to_json_value(entry.get("after"))
        row = {name: getattr(event, name) for name in services.HASHED_FIELDS}
        assert services.event_hash(row) == event.hash
        assert event.seq == (2 if entry["target"][1] % 2 else 1)
    assert services.verify() is None
