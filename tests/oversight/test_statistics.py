"""The statistics of a small city equal a hand computation, for each of three instruments and above them.

Hand computation (see conftest for the scenario; minutes, then hours):

sem: sessions 120 + 90 + 60 = 270 min use, + 3 × 30 allowance = 360 min = 6.00 h effective;
     external: B2 (90 + 30) + unbooked company (60 + 30) = 210 min = 3.50 h; share 210/360 = 0.5833;
     utilization 6 / 1400 = 0.0043; settled B1, B2, B3 = 3 with 1 no-show = 0.3333;
     service records B1, B2, unbooked = 3, external 2; ratings 4, 5 = 4.50;
     users researcher, other_researcher, company_user = 3, external 2, external organizations B, C = 2;
     charges (booked time): B1 2 h × 100 = 200, B2 2 h × 200 = 400, B3 no-show 2 h × 300 = 600,
     unbooked 1 h × 300 = 300: income 1,500.00, external 1,300.00; voucher 50 % of 600 + 300 = 450.00;
     invoices: March close (lab A, lab B, company) + April close (company) = 4.
nmr: 270 + 60 = 330 min, + 2 × 30 = 390 min = 6.50 h, all internal: share 0; utilization 6.5 / 800 = 0.0081;
     settled 1, no-show 0; records 2, external 0; users researcher, manager = 2; no price, no income.
ms:  120 + 60 = 180 min = 3.00 h, external (researcher of A on B's instrument) 120 min = 2.00 h, share 0.6667;
     utilization 3 / 1400 = 0.0021; records 2, external 1, rating 3; users 2, external 1 (organization A).
Org A = sem + nmr: 12.50 h, external 3.50 h, share 210/750 = 0.28, quota 2,200 h → 0.0057; users 4,
     external users 2, external organizations 2; settled 4, no-shows 1 = 0.25; ratings 4.50; invoices 4.
City: 15.50 h, external 5.50 h, share 330/930 = 0.3548; users 4; external users 3 (researcher is external
     on ms only); external organizations 3.
"""

from decimal import Decimal

import pytest
from django.core.management import call_command

from oversight import queries, services
from oversight.models import InstrumentMonthStat, InstrumentYearStat
from oversight.queries import Scope
from tests.oversight.conftest import YEAR

pytestmark = pytest.mark.django_db
EVERYTHING = Scope(everything=True)
D = Decimal


def figures(row) -> dict:
    return {
        "effective_hours": row.effective_hours, "external_hours": row.external_hours, "share_rate": row.share_rate,
        "utilization": row.utilization, "sessions": row.sessions, "settled": row.settled_bookings,
        "no_show_rate": row.no_show_rate, "records": row.service_records,
        "external_records": row.external_service_records, "rating": row.average_rating, "users": row.users,
        "external_users": row.external_users, "external_organizations": row.external_organizations,
        "income": row.income, "external_income": row.external_income, "voucher": row.voucher_amount,
        "invoices": row.invoices,
    }


SEM = {"effective_hours": D("6.00"), "external_hours": D("3.50"), "share_rate": D("0.5833"),
       "utilization": D("0.0043"), "sessions": 3, "settled": 3, "no_show_rate": D("0.3333"), "records": 3,
       "external_records": 2, "rating": D("4.50"), "users": 3, "external_users": 2, "external_organizations": 2,
       "income": D("1500.00"), "external_income": D("1300.00"), "voucher": D("450.00"), "invoices": 4}
NMR = {"effective_hours": D("6.50"), "external_hours": D("0.00"), "share_rate": D("0.0000"),
       "utilization": D("0.0081"), "sessions": 2, "settled": 1, "no_show_rate": D("0.0000"), "records": 2,
       "external_records": 0, "rating": None, "users": 2, "external_users": 0, "external_organizations": 0,
       "income": D("0.00"), "external_income": D("0.00"), "voucher": D("0.00"), "invoices": 0}
MS = {"effective_hours": D("3.00"), "external_hours": D("2.00"), "share_rate": D("0.6667"),
      "utilization": D("0.0021"), "sessions": 2, "settled": 2, "no_show_rate": D("0.0000"), "records": 2,
      "external_records": 1, "rating": D("3.00"), "users": 2, "external_users": 1, "external_organizations": 1,
      "income": D("0.00"), "external_income": D("0.00"), "voucher": D("0.00"), "invoices": 0}


def test_each_instrument_equals_the_hand_computation(world, city):
    services.refresh_statistics(year=YEAR)
    rows = {row.key: row for row in queries.summarize(EVERYTHING, year=YEAR, by="instrument")}
    assert figures(rows[city.sem.pk]) == SEM
    assert figures(rows[city.nmr.pk]) == NMR
    assert figures(rows[city.ms.pk]) == MS


def test_organizations_and_the_city_add_up_with_distinct_people_and_invoices(world, city):
    services.refresh_statistics(year=YEAR)
    by_org = {row.key: row for row in queries.summarize(EVERYTHING, year=YEAR, by="organization")}
    org_a = figures(by_org[world.org_a.pk])
    assert org_a == {
        "effective_hours": D("12.50"), "external_hours": D("3.50"), "share_rate": D("0.2800"),
        "utilization": D("0.0057"), "sessions": 5, "settled": 4, "no_show_rate": D("0.2500"), "records": 5,
        "external_records": 2, "rating": D("4.50"), "users": 4, "external_users": 2, "external_organizations": 2,
        "income": D("1500.00"), "external_income": D("1300.00"), "voucher": D("450.00"), "invoices": 4}
    assert figures(by_org[world.org_b.pk]) == MS
    city_row = queries.summarize(EVERYTHING, year=YEAR, by="city")[0]
    assert (city_row.instruments, city_row.effective_hours, city_row.external_hours, city_row.share_rate) == (
        3, D("15.50"), D("5.50"), D("0.3548"))
    assert (city_row.users, city_row.external_users, city_row.external_organizations) == (4, 3, 3)
    by_lab = {row.key: row.effective_hours for row in queries.summarize(EVERYTHING, year=YEAR, by="lab")}
    assert by_lab == {world.lab_a.pk: D("12.50"), world.lab_b.pk: D("3.00")}
    by_category = queries.summarize(EVERYTHING, year=YEAR, by="category")
    assert [(row.key, row.effective_hours) for row in by_category] == [("010102", D("15.50"))]
    by_district = {row.key: row.effective_hours for row in queries.summarize(EVERYTHING, year=YEAR, by="district")}
    assert by_district == {"崂山区": D("12.50"), "市南区": D("3.00")}


def test_months_and_districts_of_external_users(world, city):
    services.refresh_statistics(year=YEAR)
    months = {row["month"]: (row["effective_hours"], row["external_hours"])
              for row in queries.monthly(EVERYTHING, year=YEAR)}
    # March: sem 270, nmr 300, ms 180 min; external sem 120 + ms 120. April: the company on sem. May: nmr.
    assert months[3] == (D("12.50"), D("4.00"))
    assert months[4] == (D("1.50"), D("1.50"))
    assert months[5] == (D("1.50"), D("0.00"))
    assert all(months[m] == (D("0.00"), D("0.00")) for m in (1, 2, 6, 7, 8, 9, 10, 11, 12))
    march = {row.key: row for row in queries.summarize(EVERYTHING, year=YEAR, by="instrument", months=(3, 3))}
    assert (march[city.sem.pk].effective_hours, march[city.sem.pk].income) == (D("4.50"), D("1200.00"))
    districts = {row["district"]: row["users"] for row in queries.external_users_by_district(EVERYTHING, year=YEAR)}
    assert districts == {"市南区": 1, "城阳区": 1, "崂山区": 1}


def test_refreshing_twice_leaves_the_same_rows_and_the_command_does_it_too(world, city):
    def snapshot():
        return sorted(InstrumentMonthStat.objects.values_list(
            "instrument_id", "month", "effective_minutes", "external_minutes", "income", "voucher_amount"))

    services.refresh_statistics(year=YEAR)
    first = snapshot()
    call_command("refresh_stats", "--year", str(YEAR))
    assert snapshot() == first
    assert InstrumentYearStat.objects.filter(year=YEAR).count() == 3


def test_idle_instruments_and_the_utilization_distribution(world, city):
    services.refresh_statistics(year=YEAR)
    distribution = dict(queries.utilization_distribution(EVERYTHING, year=YEAR))
    assert distribution["0–10%"] == 3 and sum(distribution.values()) == 3
    idle, total = queries.idle_instruments(EVERYTHING, year=YEAR)
    assert total == 3 and [row.key for row in idle] == [city.ms.pk, city.sem.pk, city.nmr.pk]
    top = queries.top_instruments(EVERYTHING, year=YEAR)
    assert [row.key for row in top] == [city.nmr.pk, city.sem.pk, city.ms.pk]
