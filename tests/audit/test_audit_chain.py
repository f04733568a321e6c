import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from instrumentshare.audit import services
from instrumentshare.audit.models import AppendOnlyError, AuditEvent, AuditSeal, AuditStream


def _write(n_streams=3, per_stream=3):
    for stream in range(n_streams):
        for step in range(per_stream):
            services.record(actor=None, action="thing.changed", target=("thing", stream),
                            before={"step": step}, after={"step": step + 1, "note": "数据"})


def tamper(sql: str, params=()):
    """Change rows behind the application's back, as someone with database access would.

    The append-only triggers must be switched off first (which itself needs table-owner rights);
    the test's transaction rolls all of it back.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            cursor.execute("ALTER TABLE audit_auditseal DISABLE TRIGGER USER")
        else:
            for table in ("audit_auditevent", "audit_auditseal"):
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        cursor.execute(sql, params)


def assert_broken(fragment: str):
    problem = services.verify()
    assert problem is not None, "verify() found nothing wrong"
    assert fragment in str(problem)
    with pytest.raises(CommandError) as error:
        call_command("verify_audit")
    assert fragment in str(error.value)
    return problem


@pytest.mark.django_db
def test_each_stream_is_a_chain_with_a_head():
    _write()
    events = list(AuditEvent.objects.filter(stream_key="thing:1").order_by("seq"))
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == "0" * 64
    assert events[1].prev_hash == events[0].hash
    head = AuditStream.objects.get(key="thing:1")
    assert (head.last_seq, head.last_hash) == (3, events[2].hash)
    assert services.verify() is None
    call_command("verify_audit")


@pytest.mark.django_db
def test_events_carry_actor_time_request_id_and_changes(world):
    from instrumentshare.core.context import set_request_id

    set_request_id("req-123456789")
    event = services.record(actor=world.researcher, action="booking.cancelled", target=world.lab_a,
                            before={"state": "confirmed"}, after={"state": "cancelled"}, reason="ill")
    event.refresh_from_db()
    assert event.actor_id == world.researcher.pk
    assert event.request_id == "req-123456789"
    assert event.occurred_at.utcoffset().total_seconds() == 0
    assert event.target_type == "accounts.lab"
    assert event.before == {"state": "confirmed"} and event.after == {"state": "cancelled"}
    assert event.reason == "ill"


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_audit_row():
    with pytest.raises(RuntimeError), transaction.atomic():
        services.record(actor=None, action="thing.changed", target=("thing", 1))
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()
    assert not AuditStream.objects.filter(key="thing:1", last_seq__gt=0).exists()


@pytest.mark.django_db
def test_the_models_refuse_to_change_or_delete_rows():
    _write(1, 1)
    event = AuditEvent.objects.get()
    event.action = "edited"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="edited")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.django_db
def test_the_database_refuses_update_and_delete():
    _write(1, 1)
    for sql in ("UPDATE audit_auditevent SET action = 'edited'", "DELETE FROM audit_auditevent"):
        with pytest.raises(Exception) as error, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
        assert "append-only" in str(error.value)
    assert AuditEvent.objects.get().action == "thing.changed"


@pytest.mark.django_db
def test_verify_catches_an_edited_row():
    _write()
    target = AuditEvent.objects.get(stream_key="thing:1", seq=2)
    tamper("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["rewritten", target.pk])
    problem = assert_broken(f"event id={target.pk}")
    assert "edited" in problem.reason


@pytest.mark.django_db
def test_verify_catches_a_deleted_row():
    _write()
    target = AuditEvent.objects.get(stream_key="thing:2", seq=2)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [target.pk])
    problem = assert_broken("thing:2 #3")
    assert "deleted" in problem.reason


@pytest.mark.django_db
def test_verify_catches_a_deleted_last_row():
    _write()
    target = AuditEvent.objects.get(stream_key="thing:0", seq=3)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [target.pk])
    assert_broken("stream thing:0")


@pytest.mark.django_db
def test_verify_catches_swapped_rows():
    _write()
    first = AuditEvent.objects.get(stream_key="thing:1", seq=1)
    second = AuditEvent.objects.get(stream_key="thing:1", seq=2)
    tamper("UPDATE audit_auditevent SET seq = seq + 100 WHERE id IN (%s, %s)", [first.pk, second.pk])
    tamper("UPDATE audit_auditevent SET seq = 2 WHERE id = %s", [first.pk])
    tamper("UPDATE audit_auditevent SET seq = 1 WHERE id = %s", [second.pk])
    assert_broken("thing:1 #1")


@pytest.mark.django_db
def test_sealing_ties_all_streams_into_one_chain():
    _write()
    assert services.seal_pending() == 9
    assert services.seal_pending() == 0
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [s.seq for s in seals] == list(range(1, 10))
    assert seals[1].prev_hash == seals[0].hash
    assert services.verify() is None


@pytest.mark.django_db
def test_the_seal_chain_catches_a_whole_stream_removed_with_its_head():
    _write()
    services.seal_pending()
    ids = list(AuditEvent.objects.filter(stream_key="thing:0").values_list("id", flat=True))
    placeholders = ",".join(["%s"] * len(ids))
    tamper(f"DELETE FROM audit_auditseal WHERE event_id IN ({placeholders})", ids)
    tamper(f"DELETE FROM audit_auditevent WHERE id IN ({placeholders})", ids)
    tamper("DELETE FROM audit_auditstream WHERE key = %s", ["thing:0"])
    assert_broken("seal #")


@pytest.mark.django_db
def test_an_export_verifies_offline_and_catches_an_edit(tmp_path):
    _write()
    out = tmp_path / "audit.jsonl"
    call_command("export_audit", output=str(out))
    call_command("verify_audit", file=str(out))
    lines = out.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4].replace("thing.changed", "thing.forged")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CommandError, match="edited"):
        call_command("verify_audit", file=str(out))


@pytest.mark.django_db
def test_the_same_stream_sequence_cannot_be_written_twice():
    _write(1, 1)
    event = AuditEvent.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(
            stream_key=event.stream_key, seq=event.seq, occurred_at=event.occurred_at, action="x",
            target_type="thing", target_id="0", prev_hash="0" * 64, hash="f" * 64,
        )
