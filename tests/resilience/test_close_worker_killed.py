"""A worker SIGKILLed in the middle of a month's close, the task redelivered to another worker: the
period, its invoices and its audit events equal those of a clean close of the same month (issue 18,
item 4). Two providers bill the same use to the same accounts; one closes cleanly in-process, the
other on a real worker that is killed after its first invoices."""

import datetime as dt
import os
import signal
import time

import pytest

from billing import services as billing_services
from billing.models import BillingPeriod, Charge, Invoice
from billing.services import closing
from billing.tasks import close_period_task
from instrumentshare.accounts import services as accounts
from instrumentshare.audit.models import AuditEvent
from instrumentshare.audit.services import verify
from tests.billing.conftest import MONTH, at, make_card, make_item
from tests.bookings.conftest import make_instrument
from tests.conftest import requires_postgres

ACCOUNTS = 30
USES_PER_ACCOUNT = 12
# Redelivery within seconds instead of the production visibility timeout (the hard limit + 60 s).
FAST_REDELIVERY = {"CELERY_VISIBILITY_TIMEOUT": "5", "CELERY_UNACKED_RESTORE_INTERVAL": "1",
                   "CELERY_UNACKED_RESTORE_THROTTLE": "1"}


def _same_use_at_two_providers(world):
    """ACCOUNTS labs of a third university, each with a cost centre and a member who used an
    instrument of organization A and one of organization B alike (other academic at both)."""
    third = accounts.create_organization(actor=None, name_zh="丁大学", name_en="University D", kind="university")
    instruments = [make_instrument(world, name="扫描电镜"),
                   make_instrument(world, name="透射电镜", lab=world.lab_b, manager=world.other_manager)]
    for instrument in instruments:
        make_card(instrument, minimum_charge="0")
    for index in range(ACCOUNTS):
        lab = accounts.create_lab(actor=None, organization=third, code=f"d-{index}", name_zh=f"丁{index}",
                                  name_en=f"D {index}")
        user = accounts.create_user(actor=None, username=f"d{index}", password="x" * 12, email=f"d{index}@d.example",
                                    full_name=f"D {index}", organization=third)
        accounts.set_membership(actor=None, lab=lab, user=user, role="member")
        billing_services.create_account(actor=None, kind="cost_centre", organization=third, lab=lab,
                                        number=f"CC-D-{index:03d}", name=f"D {index} cost centre")
        for use in range(USES_PER_ACCOUNT):
            for instrument in instruments:
                make_item(instrument, user, start=at(1 + use, 9 + index % 8), minutes=30 + 5 * index + use)


def _invoices(organization):
    """What a provider invoiced for the month, keyed by account, without what differs by issuer."""
    invoices = Invoice.objects.filter(issuer=organization, period=MONTH, kind=Invoice.Kind.INVOICE)
    return {invoice.account.number: (invoice.subtotal, invoice.voucher_amount, invoice.amount_due,
                                     [(line.hours, line.samples, line.uses, line.charge_count, line.amount)
                                      for line in invoice.lines.order_by("position")])
            for invoice in invoices.select_related("account")}


def _closed_event(period):
    return AuditEvent.objects.filter(action="billing.period.closed", target_id=str(period.pk)).get().after


@requires_postgres
@pytest.mark.celery_worker
def test_a_close_whose_worker_is_killed_finishes_equal_to_a_clean_close(world, start_worker):
    _same_use_at_two_providers(world)
    now = at(3, 9, month="2026-11")
    [clean] = closing.close_period(actor=world.other_finance, month=MONTH, organization_ids=[world.org_b.pk], now=now)
    assert (clean.state, clean.invoices_issued) == ("closed", ACCOUNTS)

    period = BillingPeriod.objects.create(organization=world.org_a, month=MONTH, state="closing", started_at=now,
                                          started_by=world.finance)
    first = start_worker(extra_env=FAST_REDELIVERY)
    result = close_period_task.apply_async(args=[period.pk], queue=first.queue)
    mine = Invoice.objects.filter(issuer=world.org_a)
    deadline = time.monotonic() + 120
    while not mine.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    partial = mine.count()
    assert 0 < partial < ACCOUNTS, f"the worker was not caught mid-close ({partial} of {ACCOUNTS} invoices)"
    left = BillingPeriod.objects.get(pk=period.pk)
    assert left.state == "closing" and left.heartbeat_at is not None
    # Nobody finishes it: within minutes (not an hour) it is seen as stuck and may be requested again.
    assert not closing.is_stuck(left, left.heartbeat_at + dt.timedelta(minutes=1))
    assert closing.is_stuck(left, left.heartbeat_at + dt.timedelta(minutes=6))

    start_worker(queue=first.queue, extra_env=FAST_REDELIVERY)  # the killed task is handed to this one
    assert result.get(timeout=180) == "closed"

    resumed = BillingPeriod.objects.get(pk=period.pk)
    clean.refresh_from_db()
    assert (resumed.state, resumed.invoices_issued, resumed.charges_created, resumed.unassigned_items) == (
        "closed", clean.invoices_issued, clean.charges_created, clean.unassigned_items)
    assert resumed.charges_created == ACCOUNTS * USES_PER_ACCOUNT
    assert _invoices(world.org_a) == _invoices(world.org_b)  # no duplicate, nothing lost, the same amounts
    assert sorted(mine.values_list("sequence", flat=True)) == list(range(1, ACCOUNTS + 1))  # gapless
    assert not Charge.objects.filter(provider=world.org_a, invoice__isnull=True).exists()
    assert _closed_event(resumed) == _closed_event(clean)
    issued = AuditEvent.objects.filter(action="billing.invoice.issued", target_type="billing.invoice")
    assert issued.filter(target_id__in=[str(pk) for pk in mine.values_list("pk", flat=True)]).count() == ACCOUNTS
    assert issued.count() == 2 * ACCOUNTS
    assert verify() is None  # the killed transaction left no half-written link in the audit chain
