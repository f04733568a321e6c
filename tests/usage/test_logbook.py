import io

import pytest
from django.test import Client

from usage.models import UsageSession

pytestmark = pytest.mark.django_db


def upload(client_headers, content: bytes, name: str, dry_run: bool):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return Client().post(f"/api/v1/usage/import?dry_run={'true' if dry_run else 'false'}",
                         {"file": SimpleUploadedFile(name, content)}, headers=client_headers)


def _headers(world, user):
    from instrumentshare.accounts.services import create_api_token

    return {"Authorization": f"Bearer {create_api_token(user=user, name='t')[1]}"}


GOOD = ("资产编号,用户名,开始时间,结束时间,样品数\n"
        "A-扫描电镜-Asia/Shanghai,researcher,2026-11-03 09:00,2026-11-03 11:30,3\n"
        "A-扫描电镜-Asia/Shanghai,,2026-11-04 14:00,2026-11-04 15:00,0\n").encode("utf-8-sig")


def test_a_bad_file_changes_nothing_and_names_each_bad_row(world, instrument):
    bad = ("asset_number,username,start,end,samples\n"
           "A-扫描电镜-Asia/Shanghai,researcher,2026-11-03 09:00,2026-11-03 11:30,3\n"
           "NOPE,researcher,2026-11-03 09:00,2026-11-03 11:30,3\n"
           "A-扫描电镜-Asia/Shanghai,ghost,2026-11-03 09:00,2026-11-03 11:30,3\n"
           "A-扫描电镜-Asia/Shanghai,researcher,2026-11-03 12:00,2026-11-03 11:30,3\n"
           "A-扫描电镜-Asia/Shanghai,researcher,yesterday,2026-11-03 11:30,x\n").encode()
    for dry_run in (True, False):
        response = upload(_headers(world, world.manager), bad, "log.csv", dry_run)
        assert response.status_code == 422
        assert [e["line"] for e in response.json()["errors"]] == [3, 4, 5, 6]
    assert not UsageSession.objects.exists()


def test_a_good_file_imports_once(world, instrument):
    headers = _headers(world, world.manager)
    dry = upload(headers, GOOD, "log.csv", True).json()
    assert (dry["rows"], dry["created"], dry["errors"]) == (2, 0, [])
    assert not UsageSession.objects.exists()
    done = upload(headers, GOOD, "log.csv", False).json()
    assert done["created"] == 2
    again = upload(headers, GOOD, "log.csv", False).json()
    assert (again["created"], again["unchanged"]) == (0, 2)
    session = UsageSession.objects.get(user=world.researcher)
    assert session.start.astimezone(instrument.zone).hour == 9 and session.samples == 3


def test_another_labs_manager_cannot_import_for_this_instrument(world, instrument):
    response = upload(_headers(world, world.other_manager), GOOD, "log.csv", False)
    assert response.status_code == 422
    assert not UsageSession.objects.exists()


def test_xlsx_and_a_zip_bomb(world, instrument):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["资产编号", "用户名", "开始时间", "结束时间", "样品数"])
    import datetime as dt

    start = dt.datetime(2026, 11, 3, 9)
    sheet.append(["A-扫描电镜-Asia/Shanghai", "researcher", start, start + dt.timedelta(hours=1), 1])
    buffer = io.BytesIO()
    workbook.save(buffer)
    headers = _headers(world, world.manager)
    assert upload(headers, buffer.getvalue(), "log.xlsx", False).json()["created"] == 1
    import zipfile

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (60 * 1024 * 1024))
    response = upload(headers, bomb.getvalue(), "bomb.xlsx", True)
    assert response.status_code == 422 and response.json()["code"] == "file_too_large"


def test_a_gb18030_csv_is_read_and_garbage_is_a_clear_422(world, instrument):
    headers = _headers(world, world.manager)
    assert upload(headers, GOOD.decode("utf-8-sig").encode("gb18030"), "log.csv", True).json()["rows"] == 2
    garbage = upload(headers, b"\xff\xfe\x00\x81\x82" * 10, "log.csv", True)
    assert garbage.status_code == 422 and garbage.json()["code"] in {"invalid_encoding", "invalid_file",
                                                                   "missing_columns"}
