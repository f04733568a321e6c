"""A real Celery worker on Redis closes a period; its progress is read from the database meanwhile."""

import pytest

from billing.models import BillingPeriod, Invoice
from billing.tasks import close_period_task
from tests.billing.conftest import MONTH, at, make_item


@pytest.mark.celery_worker
def test_a_real_worker_closes_the_period_and_leaves_its_progress_in_the_database(world, billing, start_worker):
    for day in range(1, 6):
        make_item(billing.instrument, world.researcher, start=at(day), minutes=60)
        make_item(billing.instrument, world.company_user, start=at(day, 14), minutes=60)
    period = BillingPeriod.objects.create(organization=world.org_a, month=MONTH, state="closing")
    worker = start_worker()
    assert close_period_task.apply_async(args=[period.pk], queue=worker.queue).get(timeout=120) == "closed"
    period.refresh_from_db()
    assert (period.state, period.percent, period.progress_done, period.invoices_issued) == ("closed", 100, 2, 2)
    assert Invoice.objects.count() == 2
    # Safe to run twice: the second run finds the period closed.
    assert close_period_task.apply_async(args=[period.pk], queue=worker.queue).get(timeout=60) == "closed"
    assert Invoice.objects.count() == 2
