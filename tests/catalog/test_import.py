"""Bulk import and export of instrument records: dry run, all or nothing, limits, the same format both ways."""

import csv
import io
import re
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from openpyxl import Workbook

from catalog import spreadsheet
from catalog.models import Instrument
from instrumentshare.accounts.models import User
from instrumentshare.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

HEADER = ["仪器名称", "英文名称", "资产编号", "分类编码", "经费来源", "原值（元）", "生产制造商", "规格型号",
          "购置日期", "共享模式", "运行状态", "海关监管", "备注"]
GOOD_ROWS = [
    ["场发射扫描电镜", "FE-SEM", "IMP-001", "010102", "中央财政", "3,800,000.00", "Carl Zeiss", "GeminiSEM 500",
     "2019-06-18", "对外共享", "正常", "否", "三楼"],
    ["核磁共振波谱仪", "NMR", "IMP-002", "10601", "地方财政;自有资金", "3600000", "Bruker", "AVANCE NEO 400",
     "2019/8/26", "内部共享", "偶有故障", "是", ""],
    ["台式扫描电镜", "", "IMP-003", "010102", "other", "92000", "Hitachi", "TM4000", "2021年4月12日", "", "", "", ""],
]


def csv_bytes(rows, header=HEADER, encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows, header=HEADER) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def upload(api, content: bytes, name: str, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    file = io.BytesIO(content)
    file.name = name
    return api.client.post(f"/api/v1/instruments/import?{query}", {"file": file}, headers=api.headers)


def test_a_dry_run_checks_everything_and_saves_nothing(world, api_as):
    response = upload(api_as(world.manager), csv_bytes(GOOD_ROWS), "lab.csv", lab="lab-a")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {"dry_run": True, "ok": True, "rows": 3, "valid_rows": 3, "imported": 0, "instrument_ids": [],
                    "ignored_columns": ["备注"], "problems": []}
    assert Instrument.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="instrument.").exists()


def test_a_good_file_imports_in_one_go_as_drafts(world, api_as):
    response = upload(api_as(world.manager), csv_bytes(GOOD_ROWS), "lab.csv", lab="lab-a", dry_run="false")
    assert response.status_code == 201, response.content
    assert response.json()["imported"] == 3
    sem, nmr, bench = (Instrument.objects.get(asset_number=f"IMP-00{i}") for i in (1, 2, 3))
    assert (sem.original_value, sem.funded_central, sem.share_mode, sem.listing_state) == (3800000, True,
                                                                                       "external", "draft")
    assert (nmr.category_id, nmr.funded_local, nmr.funded_own, nmr.share_mode, nmr.status, nmr.customs_supervised) \
        == ("010601", True, True, "internal", "occasional_faults", True)
    assert str(nmr.purchase_date) == "2019-08-26" and str(bench.purchase_date) == "2021-04-12"
    assert bench.funded_other and bench.share_mode == "external" and bench.lab == world.lab_a
    imported = AuditEvent.objects.get(action="instrument.imported")
    assert imported.after["count"] == 3
    assert AuditEvent.objects.filter(action="instrument.created").count() == 3


def test_a_file_with_bad_rows_changes_nothing_and_reports_each_row(world, api_as, make_instrument):
    make_instrument(asset_number="TAKEN-1")
    rows = [
        GOOD_ROWS[0],
        ["", "", "IMP-010", "010102", "中央财政", "100", "", "", "", "", "", "", ""],  # line 3: no name
        ["坏日期", "", "IMP-011", "010102", "中央财政", "100", "", "", "2019-13-45", "", "", "", ""],  # line 4
        ["坏分类", "", "IMP-012", "999999", "中央财政", "100", "", "", "", "", "", "", ""],  # line 5
        ["粗分类", "", "IMP-013", "010100", "中央财政", "100", "", "", "", "", "", "", ""],  # line 6
        ["坏价格", "", "IMP-014", "010102", "中央财政", "十万", "", "", "", "", "", "", ""],  # line 7
        ["坏经费", "", "IMP-015", "010102", "银行贷款", "100", "", "", "", "", "", "", ""],  # line 8
        ["坏模式", "", "IMP-016", "010102", "中央财政", "100", "", "", "", "随便", "", "", ""],  # line 9
        ["重复", "", "IMP-001", "010102", "中央财政", "100", "", "", "", "", "", "", ""],  # line 10: dup in file
        ["已有", "", "TAKEN-1", "010102", "中央财政", "100", "", "", "", "", "", "", ""],  # line 11: dup in lab
        ["必须共享", "", "IMP-017", "010102", "中央财政", "900000", "", "", "", "不共享", "", "", ""],  # line 12
    ]
    client = api_as(world.manager)
    before = (Instrument.objects.count(), AuditEvent.objects.count())
    for dry_run in ("true", "false"):
        response = upload(client, csv_bytes(rows), "lab.csv", lab="lab-a", dry_run=dry_run)
        body = response.json()
        problems = body["problems"]
        lines = sorted({p["line"] for p in problems})
        assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], problems
        messages = {p["line"]: f"{p['field']}: {p['message']}" for p in problems}
        assert "仪器名称" in messages[3]
        assert "YYYY-MM-DD" in messages[4]
        assert messages[5].startswith("分类编码") and "999999" in messages[5]
        assert "sub-categories" in messages[6]
        assert "原值" in messages[7]
        assert "银行贷款" in messages[8]
        assert "随便" in messages[9]
        assert messages[10] == "资产编号: IMP-001 is already listed." and "TAKEN-1" in messages[11]
        assert "exemption" in messages[12]
        if dry_run == "false":
            assert response.status_code == 422 and body["code"] == "import_failed"
        assert (Instrument.objects.count(), AuditEvent.objects.count()) == before


def test_xlsx_files_import_the_same_way(world, api_as):
    rows = [list(row) for row in GOOD_ROWS]
    rows[0][5] = 3800000  # numbers and dates as Excel keeps them
    import datetime as dt

    rows[0][8] = dt.datetime(2019, 6, 18)
    rows[1][3] = 10601
    response = upload(api_as(world.manager), xlsx_bytes(rows), "lab.xlsx", lab="lab-a", dry_run="false")
    assert response.status_code == 201, response.content
    assert Instrument.objects.get(asset_number="IMP-002").category_id == "010601"


def test_english_headers_gb18030_csv_and_values_in_ten_thousands(world, api_as):
    header = ["Name (Chinese)", "Asset number", "Category code", "Funding", "原值（万元）"]
    content = csv_bytes([["电镜", "E-1", "010102", "central", "380"]], header=header, encoding="gb18030")
    response = upload(api_as(world.manager), content, "lab.csv", lab="lab-a", dry_run="false")
    assert response.status_code == 201, response.content
    assert Instrument.objects.get(asset_number="E-1").original_value == 3800000


def test_a_title_line_above_the_header_is_skipped_and_lines_keep_their_numbers(world, api_as):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([["甲实验室仪器清单（2026）"], HEADER, GOOD_ROWS[0], [""] * len(HEADER),
                      ["", "", "X", "010102", "中央财政", "1", "", "", "", "", "", "", ""]])
    response = upload(api_as(world.manager), buffer.getvalue().encode(), "lab.csv", lab="lab-a")
    assert [p["line"] for p in response.json()["problems"]] == [5]


def test_only_a_manager_of_the_lab_may_import(world, api_as):
    content = csv_bytes(GOOD_ROWS)
    assert upload(api_as(world.other_manager), content, "lab.csv", lab="lab-a").status_code == 403
    assert upload(api_as(world.researcher), content, "lab.csv", lab="lab-a").status_code == 403
    assert upload(api_as(world.manager), content, "lab.csv", lab="nope").status_code == 404
    assert upload(api_as(None), content, "lab.csv", lab="lab-a").status_code == 401
    # one managed lab: it may be left out
    assert upload(api_as(world.manager), content, "lab.csv").status_code == 200


def test_files_over_5_mb_are_refused(world, api_as):
    content = csv_bytes(GOOD_ROWS) + b"x" * (5 * 1024 * 1024)
    response = upload(api_as(world.manager), content, "big.csv", lab="lab-a")
    assert response.status_code in (413, 422)
    assert Instrument.objects.count() == 0


def test_more_than_5000_rows_are_refused(world, api_as):
    rows = [["仪器", "", f"R-{i}", "010102", "中央财政", "1"] for i in range(5001)]
    response = upload(api_as(world.manager), csv_bytes(rows, header=HEADER[:6]), "many.csv", lab="lab-a")
    assert response.status_code == 422 and response.json()["code"] == "too_many_rows"


def test_an_xlsx_zip_bomb_is_refused_before_it_is_inflated(world, api_as):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<" + b"a" * (100 * 1024 * 1024) + b">")
    content = buffer.getvalue()
    assert len(content) < 5 * 1024 * 1024
    response = upload(api_as(world.manager), content, "bomb.xlsx", lab="lab-a")
    assert response.status_code == 422 and response.json()["code"] == "file_too_large"


def test_a_damaged_xlsx_is_a_clear_error(world, api_as):
    response = upload(api_as(world.manager), b"PK\x03\x04 not really", "broken.xlsx", lab="lab-a")
    assert response.status_code == 422 and response.json()["code"] == "invalid_file"


def test_export_writes_the_import_format_and_it_reads_back(world, api_as, make_instrument):
    make_instrument(name_zh="=cmd|' /C calc'!A0", model_number="-80 °C", asset_number="X-1", funded_own=True)
    make_instrument(asset_number="X-2", share_mode="internal")
    response = api_as(world.manager).get("/instruments/export", {"lab": "lab-a", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="instruments-lab-a.csv"'
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [column.header for column in spreadsheet.COLUMNS]
    assert rows[1][0] == "'=cmd|' /C calc'!A0" and "'-80 °C" in rows[1]
    assert "中央财政;自有资金" in rows[1] and "内部共享" in rows[2]
    # the same file goes into lab B as it is (and the quotes come off)
    back = upload(api_as(world.other_manager), response.content, "export.csv", lab="lab-b", dry_run="false")
    assert back.status_code == 201, back.content
    copy = Instrument.objects.get(lab=world.lab_b, asset_number="X-1")
    assert copy.name_zh == "=cmd|' /C calc'!A0" and copy.model_number == "-80 °C"
    assert copy.funded_central and copy.funded_own
    assert Instrument.objects.get(lab=world.lab_b, asset_number="X-2").share_mode == "internal"
    xlsx = api_as(world.manager).get("/instruments/export", {"lab": "lab-a", "format": "xlsx"})
    assert xlsx.content[:2] == b"PK"
    assert api_as(world.other_manager).get("/instruments/export", {"lab": "lab-a"}).status_code == 403
    assert api_as(world.bureau).get("/instruments/export", {"lab": "lab-a"}).status_code == 200


def test_the_import_page_checks_then_imports_on_confirmation(world):
    client = Client()
    client.force_login(User.objects.get(username="manager"))
    file = io.BytesIO(csv_bytes(GOOD_ROWS))
    file.name = "lab.csv"
    checked = client.post("/instruments/import/", {"lab": world.lab_a.pk, "file": file})
    html = checked.content.decode()
    assert checked.status_code == 200 and 'data-testid="confirm-import"' in html
    assert Instrument.objects.count() == 0
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    done = client.post("/instruments/import/", {"token": token})
    assert done.status_code == 302
    assert Instrument.objects.filter(lab=world.lab_a).count() == 3
    assert client.post("/instruments/import/", {"token": token}).status_code == 302  # used up: nothing twice
    assert Instrument.objects.count() == 3


def test_the_import_page_lists_bad_rows(world):
    client = Client()
    client.force_login(User.objects.get(username="manager"))
    file = io.BytesIO(csv_bytes([GOOD_ROWS[0], ["", "", "B-1", "010102", "中央财政", "1"] + [""] * 7]))
    file.name = "lab.csv"
    html = client.post("/instruments/import/", {"lab": world.lab_a.pk, "file": file}).content.decode()
    assert 'data-testid="import-problems"' in html and "<td>3</td>" in html
    assert 'name="token"' not in html


def test_the_import_page_is_for_lab_managers(world):
    client = Client()
    client.force_login(User.objects.get(username="researcher"))
    assert client.get("/instruments/import/").status_code == 403
    client.force_login(User.objects.get(username="manager"))
    file = io.BytesIO(csv_bytes(GOOD_ROWS))
    file.name = "lab.csv"
    # lab B is not among the manager's labs: the form refuses it
    response = client.post("/instruments/import/", {"lab": world.lab_b.pk, "file": file})
    assert response.status_code == 200 and Instrument.objects.count() == 0
    assert "confirm-import" not in response.content.decode()


def test_the_management_commands_import_and_export(world, tmp_path):
    path = tmp_path / "lab.csv"
    path.write_bytes(csv_bytes(GOOD_ROWS))
    out = io.StringIO()
    call_command("import_instruments", str(path), "--lab", "lab-a", "--user", "manager", stdout=out)
    assert "3 rows are fine" in out.getvalue() and Instrument.objects.count() == 0
    call_command("import_instruments", str(path), "--lab", "lab-a", "--user", "manager", "--commit", stdout=out)
    assert Instrument.objects.count() == 3
    with pytest.raises(CommandError):
        call_command("import_instruments", str(path), "--lab", "lab-b", "--user", "manager", stdout=out)
    target = tmp_path / "out.xlsx"
    call_command("export_instruments", "--lab", "lab-a", "--format", "xlsx", "--output", str(target))
    assert target.read_bytes()[:2] == b"PK"
