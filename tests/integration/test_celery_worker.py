"""A real Celery worker process, on Redis, doing real work against the test database."""

import pytest

from instrumentshare.audit.models import AuditSeal
from instrumentshare.audit.services import record, verify
from instrumentshare.audit.tasks import seal_audit_task


@pytest.mark.celery_worker
def test_a_real_worker_seals_the_audit_trail(start_worker):
    for index in range(5):
        record(actor=None, action="thing.created", target=("thing", index))
    worker = start_worker()
    result = seal_audit_task.apply_async(queue=worker.queue)
    assert result.get(timeout=60) == 5
    assert AuditSeal.objects.count() == 5
    assert verify() is None
    # idempotent: a second run seals nothing new
    assert seal_audit_task.apply_async(queue=worker.queue).get(timeout=60) == 0


@pytest.mark.celery_worker
def test_readyz_reports_the_worker_heartbeat(start_worker, client):
    from portal.tasks import heartbeat

    assert client.get("/readyz").json()["checks"]["worker"] == "no heartbeat yet"
    worker = start_worker()
    heartbeat.apply_async(queue=worker.queue).get(timeout=60)
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["checks"] == {"database": "ok", "redis": "ok", "worker": "ok"}
