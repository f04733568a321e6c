"""A close that lost its worker half way (SIGKILL, a killed command) and is finished later: the
period's figures are counted from its invoices, equal to a clean run's; a close in progress beats,
and one silent for STUCK_AFTER may be requested again within minutes (issue 18, item 4)."""

import datetime as dt

import pytest
import time_machine

from billing.models import BillingPeriod, Charge, Invoice
from billing.services import closing
from billing.services.charges import charge_items
from instrumentshare.audit.models import AuditEvent
from tests.billing.conftest import MONTH, after_month, at, billing, make_item  # noqa: F401 - shared fixture

pytestmark = pytest.mark.django_db


def _use(world, billing):  # noqa: F811
    for day in range(1, 4):
        make_item(billing.instrument, world.researcher, start=at(day), minutes=60)
        make_item(billing.instrument, world.company_user, start=at(day, 14), minutes=60)


def _figures(period: BillingPeriod) -> tuple:
    invoices = Invoice.objects.filter(issuer_id=period.organization_id, period=period.month)
    return period.state, period.invoices_issued, invoices.count(), sorted(str(i.subtotal) for i in invoices)


def test_a_close_killed_half_way_and_finished_later_counts_every_invoice(world, billing):  # noqa: F811
    _use(world, billing)
    now = after_month()
    period = BillingPeriod.objects.create(organization=world.org_a, month=MONTH, state="closing", started_at=now)
    # What a worker killed after its first invoice leaves behind: charges, one invoice, state closing.
    _start, end = closing.queries.month_bounds(MONTH)
    charge_items(provider_id=world.org_a.pk, before=end, month=MONTH, now=now)
    first_account = Charge.objects.filter(period=MONTH).order_by("account_id").values_list("account_id",
                                                                                          flat=True).first()
    assert closing.issue_invoice(organization_id=world.org_a.pk, account_id=first_account, month=MONTH, now=now)
    resumed = closing.run_close(period.pk, now=now)
    assert _figures(resumed)[:3] == ("closed", 2, 2)
    event = AuditEvent.objects.filter(action="billing.period.closed", target_id=str(period.pk)).get()
    assert event.after["invoices_issued"] == 2


def test_resumed_figures_equal_a_clean_runs(world, billing):  # noqa: F811
    _use(world, billing)
    now = after_month()
    [clean] = closing.close_period(actor=None, month=MONTH, organization_ids=[world.org_a.pk], now=now)
    clean_figures = _figures(clean)
    assert clean_figures[:3] == ("closed", 2, 2)
    # Run again (a redelivered task): nothing changes, the figures stay what the invoices say.
    again = closing.run_close(clean.pk, now=now)
    assert _figures(again) == clean_figures


def test_a_silent_close_is_stuck_after_minutes_and_may_be_requested_again(world, billing):  # noqa: F811
    finance = world.finance
    now = after_month()
    with time_machine.travel(now, tick=False) as clock:
        first = closing.request_close(actor=finance, organization_id=world.org_a.pk, month=MONTH, now=now)
        BillingPeriod.objects.filter(pk=first.pk).update(state="closing", heartbeat_at=now)
        clock.shift(dt.timedelta(minutes=2))
        assert not closing.is_stuck(BillingPeriod.objects.get(pk=first.pk))
        clock.shift(closing.STUCK_AFTER)
        assert closing.is_stuck(BillingPeriod.objects.get(pk=first.pk))
        again = closing.request_close(actor=finance, organization_id=world.org_a.pk, month=MONTH,
                                      now=now + dt.timedelta(minutes=8))
    assert again.started_at == now + dt.timedelta(minutes=8)  # requested again: a new start
