"""Independent writers do not queue on one row (PostgreSQL, real transactions)."""

import threading
import time

import pytest
from django.db import connection, transaction

from instrumentshare.audit import services
from instrumentshare.audit.models import AuditEvent
from tests.conftest import requires_postgres


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_writer_holding_one_stream_does_not_block_another_stream():
    services.record(actor=None, action="thing.created", target=("thing", "a"))
    services.record(actor=None, action="thing.created", target=("thing", "b"))
    holding = threading.Event()
    release = threading.Event()
    finished_b = threading.Event()

    def hold_stream_a():
        with transaction.atomic():
            services.record(actor=None, action="thing.changed", target=("thing", "a"))
            holding.set()
            release.wait(10)
        connection.close()

    def write_stream_b():
        holding.wait(10)
        services.record(actor=None, action="thing.changed", target=("thing", "b"))
        finished_b.set()
        connection.close()

    threads = [threading.Thread(target=hold_stream_a), threading.Thread(target=write_stream_b)]
    for thread in threads:
        thread.start()
    # While stream a's transaction is still open, stream b's write completes.
    assert finished_b.wait(10), "a write to stream b waited for stream a's transaction"
    release.set()
    for thread in threads:
        thread.join(10)
    assert AuditEvent.objects.count() == 4
    assert services.verify() is None


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_on_one_stream_keep_the_chain_whole():
    services.record(actor=None, action="thing.created", target=("thing", "x"))
    errors = []

    def write(n):
        try:
            for step in range(5):
                services.record(actor=None, action="thing.changed", target=("thing", "x"), after={"n": n, "s": step})
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert AuditEvent.objects.filter(stream_key="thing:x").count() == 31
    assert services.verify() is None


def _released(release: threading.Event) -> None:
    """Wait until ``release`` is set, by sleeps: under a faked clock (libfaketime) a timed wait may never end."""
    while not release.is_set():
        time.sleep(0.05)


def _batch_beside(writer, keys: tuple[str, ...]) -> None:
    """Run ``writer(holding, release)``, which sets ``holding`` once it holds one of the streams and then
    waits for ``release``, beside one ``record_many`` over the streams ``keys``: the batch must still be
    waiting 1.5 s later, and end without an error once the writer is released."""
    holding, release, batch_done = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def write():
        try:
            writer(holding, release)
        finally:
            connection.close()

    def batch():
        try:
            holding.wait(10)
            services.record_many(actor=None, action="thing.settled", entries=[
                {"target": ("thing", key), "after": {"by": "batch"}} for key in keys])
            batch_done.set()
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write), threading.Thread(target=batch)]
    for thread in threads:
        thread.start()
    for _ in range(15):  # 1.5 s by sleeps, not a timed wait (see _released)
        time.sleep(0.1)
    assert not batch_done.is_set(), "the batch did not wait for the writer holding one of its streams"
    release.set()
    for thread in threads:
        thread.join(20)
    assert errors == [] and batch_done.is_set()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_a_writer_on_an_existing_stream_and_chains_to_its_event():
    """``record_many`` locks existing heads without rewriting them: it must still wait for a writer that
    holds one, then chain to the event that writer committed (and create the new streams beside)."""
    services.record(actor=None, action="thing.created", target=("thing", "held"))
    services.record(actor=None, action="thing.created", target=("thing", "free"))

    def hold(holding, release):
        # The writer locks the head first without changing it (as another batch does), then writes
        # its event: the batch must not have read the head in between.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM audit_auditstream WHERE key = 'thing:held' FOR UPDATE")
            holding.set()
            _released(release)
            services.record(actor=None, action="thing.changed", target=("thing", "held"), after={"by": "writer"})

    _batch_beside(hold, ("free", "held", "new"))
    held = list(AuditEvent.objects.filter(stream_key="thing:held").order_by("seq").values_list("seq", "action"))
    assert held == [(1, "thing.created"), (2, "thing.changed"), (3, "thing.settled")]
    assert AuditEvent.objects.get(stream_key="thing:new").seq == 1
    assert AuditEvent.objects.get(stream_key="thing:free", action="thing.settled").seq == 2
    assert services.verify() is None


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer_commits", [True, False])
def test_a_batch_creating_a_stream_waits_for_a_writer_creating_it_too(writer_commits):
    """``record_many`` creates the heads of new streams already at their first event: when another
    transaction is creating the same stream, the batch must wait for it, then chain to its event if it
    committed (seq 2), or start the stream itself if it rolled back (seq 1)."""
    services.record(actor=None, action="thing.created", target=("thing", "old"))

    class RolledBack(Exception):
        pass

    def create(holding, release):
        try:
            with transaction.atomic():
                services.record(actor=None, action="thing.created", target=("thing", "fresh"), after={"by": "writer"})
                holding.set()
                _released(release)
                if not writer_commits:
                    raise RolledBack
        except RolledBack:
            pass

    _batch_beside(create, ("another", "fresh", "old"))
    fresh = list(AuditEvent.objects.filter(stream_key="thing:fresh").order_by("seq").values_list("seq", "action"))
    assert fresh == ([(1, "thing.created"), (2, "thing.settled")] if writer_commits else [(1, "thing.settled")])
    assert AuditEvent.objects.get(stream_key="thing:another").seq == 1
    assert AuditEvent.objects.get(stream_key="thing:old", action="thing.settled").seq == 2
    assert services.verify() is None
