"""Refreshing the summary tables: months in each instrument's own time zone, the periodic task, the commands."""

import datetime as dt
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.core.management import call_command

from oversight import queries, services, tasks
from oversight.models import InstrumentMonthStat, StatRefresh
from oversight.queries import Scope
from tests.bookings.conftest import make_instrument
from usage.models import UsageSession

pytestmark = pytest.mark.django_db
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_a_session_counts_in_the_month_of_its_instruments_own_time_zone(world):
    berlin = make_instrument(world, name="柏林电镜", zone="Europe/Berlin", purchase_date=dt.date(2024, 1, 1))
    qingdao = make_instrument(world, name="青岛电镜", purchase_date=dt.date(2024, 1, 1))
    # 31 March 23:30 in Berlin is already 1 April 05:30 in Shanghai; the same instant on both instruments.
    start = dt.datetime(2025, 3, 31, 23, 30, tzinfo=BERLIN)
    for ref, instrument in (("b", berlin), ("q", qingdao)):
        UsageSession.objects.create(instrument=instrument, user=world.researcher, source="manual", external_ref=ref,
                                    start=start, end=start + dt.timedelta(minutes=60))
    services.refresh_statistics(year=2025, block_size=1)  # one instrument per block: the block edges too
    months = dict(InstrumentMonthStat.objects.values_list("instrument_id", "month"))
    assert months == {berlin.pk: 3, qingdao.pk: 4}
    rows = {row.key: row.effective_hours for row in queries.summarize(Scope(everything=True), year=2025,
                                                                      by="instrument")}
    assert rows == {berlin.pk: Decimal("1.00"), qingdao.pk: Decimal("1.00")}


def test_usage_that_disappears_disappears_from_the_statistics_at_the_next_refresh(world):
    instrument = make_instrument(world, purchase_date=dt.date(2024, 1, 1))
    start = dt.datetime(2025, 6, 2, 10, tzinfo=SHANGHAI)
    session = UsageSession.objects.create(instrument=instrument, user=world.researcher, source="manual",
                                          external_ref="gone", start=start, end=start + dt.timedelta(hours=3))
    services.refresh_statistics(year=2025)
    assert InstrumentMonthStat.objects.get().effective_minutes == 180
    session.delete()
    services.refresh_statistics(year=2025)
    assert not InstrumentMonthStat.objects.exists()
    idle = queries.summarize(Scope(everything=True), year=2025, by="instrument")
    assert [(row.key, row.effective_minutes, row.instruments) for row in idle] == [(instrument.pk, 0, 1)]


def test_the_periodic_task_and_the_command_refresh_and_say_when(world):
    make_instrument(world, purchase_date=dt.date(2024, 1, 1))
    [result] = tasks.refresh_statistics_task.delay(year=2025).get()
    assert result["year"] == 2025 and result["instruments"] == 1
    assert StatRefresh.objects.get(year=2025).instruments == 1
    out = io.StringIO()
    call_command("refresh_stats", "--year", "2024", "--year", "2025", stdout=out)
    assert "2024: 1 instruments" in out.getvalue() and "2025: 1 instruments" in out.getvalue()


def test_years_to_refresh_include_last_year_early_in_the_year():
    assert services.years_to_refresh(today=dt.date(2026, 1, 15)) == [2025, 2026]
    assert services.years_to_refresh(today=dt.date(2026, 7, 1)) == [2026]


def test_the_export_command_stores_once_and_says_so(world, city, tmp_path, settings):
    settings.OVERSIGHT_EXPORT_DIR = str(tmp_path)
    services.refresh_statistics(year=2025)
    out = io.StringIO()
    call_command("export_national", "--quarter", "2025-Q1", "--organization", str(world.org_a.pk), stdout=out)
    call_command("export_national", "--quarter", "2025-Q1", "--organization", str(world.org_a.pk), stdout=out)
    lines = out.getvalue().splitlines()
    assert "created" in lines[0] and "already there" in lines[1] and "sent to" in lines[1]
