"""The annual evaluation ranks the organizations by a weighted score; the XLSX report opens.

Hand computation for 2025 (weights 20/20/20/15/15/10, targets share 30 %, 20 external services per instrument):
org A: open 2/2 → 100; run 12.5 h / 2,200 h → 0.6; shared 0.28 / 0.30 → 93.3; external results 2 per 2
instruments = 1 / 20 → 5.0; ratings 4.5 / 5 → 90.0; online 2/2 → 100.
score (2000 + 12 + 1866 + 75 + 1350 + 1000) / 100 = 63.0 → pass.
org B: open 1/1 → 100; run 3 / 1,400 → 0.2; shared 0.6667 / 0.30 → 100 (capped); external results 1 / 20 → 5.0;
ratings 3 / 5 → 60.0; online 100. score (2000 + 4 + 2000 + 75 + 900 + 1000) / 100 = 59.8 → poor.
"""

import io
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from openpyxl import load_workbook

from oversight import evaluation, reports, services
from tests.oversight.conftest import YEAR

pytestmark = pytest.mark.django_db


def test_organizations_are_scored_graded_and_ranked(world, city):
    services.refresh_statistics(year=YEAR)
    ranked = evaluation.evaluate(year=YEAR)
    assert [(row.name, row.rank, row.score, row.grade) for row in ranked] == [
        ("甲大学", 1, Decimal("63.0"), "pass"), ("乙研究所", 2, Decimal("59.8"), "poor")]
    org_a = ranked[0]
    assert org_a.scores == {"open_rate": Decimal(100), "run_hours": Decimal("0.6"), "shared_hours": Decimal("93.3"),
                            "external_results": Decimal("5.0"), "user_ratings": Decimal("90.0"),
                            "online_platform": Decimal("100.0")}


def test_weights_and_grade_thresholds_are_settings(world, city):
    services.refresh_statistics(year=YEAR)
    weights = {"open_rate": 0, "run_hours": 0, "shared_hours": 1, "external_results": 0, "user_ratings": 0,
               "online_platform": 0}
    with override_settings(OVERSIGHT_EVALUATION_WEIGHTS=weights,
                           OVERSIGHT_GRADE_THRESHOLDS={"excellent": 95, "good": 90, "pass": 50}):
        ranked = evaluation.evaluate(year=YEAR)
    assert [(row.name, row.score, row.grade) for row in ranked] == [
        ("乙研究所", Decimal("100.0"), "excellent"), ("甲大学", Decimal("93.3"), "good")]


def test_a_finance_officer_sees_their_own_rank_only(world, city, api_as):
    services.refresh_statistics(year=YEAR)
    rows = api_as(world.other_finance).get("/oversight/evaluation", {"year": YEAR}).json()
    assert [(row["organization"], row["rank"], row["grade"]) for row in rows] == [("乙研究所", 2, "poor")]
    assert api_as(world.manager).get("/oversight/evaluation", {"year": YEAR}).status_code == 404
    assert len(api_as(world.bureau).get("/oversight/evaluation", {"year": YEAR}).json()) == 2


def test_the_xlsx_report_reads_back_with_ranking_instruments_and_external_income(world, city):
    services.refresh_statistics(year=YEAR)
    client = Client()
    client.force_login(world.bureau)
    response = client.get("/oversight/evaluation.xlsx", {"year": YEAR})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    evaluation_sheet, instruments, income = workbook.worksheets
    ranking = list(evaluation_sheet.iter_rows(min_row=2, values_only=True))
    assert [(row[0], row[1], row[-2]) for row in ranking] == [(1, "甲大学", 63.0), (2, "乙研究所", 59.8)]
    listed = {row[2]: row for row in instruments.iter_rows(min_row=2, values_only=True)}
    assert set(listed) == {"OV-电镜", "OV-核磁", "OV-质谱"}  # every one is valued 1,500,000 CNY
    assert listed["OV-电镜"][10] == 6.0 and listed["OV-电镜"][17] == 1500.0
    summary = {row[0]: row for row in income.iter_rows(min_row=2, values_only=True)}
    assert summary["甲大学"][1:3] == (1500.0, 1300.0)
    assert summary[list(summary)[-1]][2] == 1300.0  # the total line


def test_the_report_of_a_finance_officer_holds_only_their_organization(world, city):
    services.refresh_statistics(year=YEAR)
    content = reports.evaluation_workbook(year=YEAR, organization_ids={world.org_b.pk})
    workbook = load_workbook(io.BytesIO(content), read_only=True)
    evaluation_sheet, instruments, _income = workbook.worksheets
    assert [row[1] for row in evaluation_sheet.iter_rows(min_row=2, values_only=True)] == ["乙研究所"]
    assert [row[2] for row in instruments.iter_rows(min_row=2, values_only=True)] == ["OV-质谱"]
    client = Client()
    client.force_login(world.manager)
    assert client.get("/oversight/evaluation.xlsx", {"year": YEAR}).status_code == 404
