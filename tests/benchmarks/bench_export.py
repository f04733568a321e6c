"""Finance export of the charges (billing.exports): CSV and XLSX rows/s and peak memory, each in a subprocess.

Each export runs in a fresh Python process (Django set up, nothing else loaded) so its peak
resident memory (VmHWM) is the export's own. Ours goes through what the HTTP export calls
(``export_queryset`` then ``csv_stream`` / ``xlsx_stream``), every byte written to /dev/null; its
row count is taken before the clock starts and checked against the file's TOTAL row (CSV).
The raw limits read the same rows, columns and order in one statement through psycopg: CSV is
``COPY (SELECT …) TO STDOUT (FORMAT csv)`` of plain values (no formula guard, no formatting), XLSX a
server-side cursor whose plain values go through the same sheet writer (``data_row``) and zip as ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .harness import Context, Result, pending

ROOT = Path(__file__).resolve().parents[2]
FIGURE = "finance export"

SCRIPT = r"""
import json, os, sys, time


def peak_kb():
    # VmHWM starts afresh at exec; ru_maxrss would carry the parent's high-water mark across fork + exec.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


kind, fmt, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
started_at = time.perf_counter()
if kind == "ours":
    import django
    django.setup()
    from billing import exports
    from billing.models import Charge
    ids = Charge.objects.order_by("-id").values_list("id", flat=True)[limit - 1:limit] if limit else []
    charges = Charge.objects.filter(pk__gte=ids[0]) if limit and ids else Charge.objects.all()
    rows = charges.count()
    baseline = peak_kb()
    started = time.perf_counter()
    stream = exports.csv_stream if fmt == "csv" else exports.xlsx_stream
    last = b""
    with open(os.devnull, "wb") as sink:
        for chunk in stream(exports.export_queryset(charges)):
            sink.write(chunk)
            last = chunk
    if fmt == "csv":
        total = last.decode().rstrip("\r\n").rsplit("\r\n", 1)[-1].split(",")
        assert total[0] == "TOTAL" and int(total[1]) == rows, total[:2]
else:
    import psycopg
    conninfo = os.environ["BENCH_CONNINFO"]
    with psycopg.connect(conninfo) as conn:
        found = conn.execute(f"SELECT id FROM billing_charge ORDER BY id DESC OFFSET {limit - 1} LIMIT 1").fetchone() \
            if limit else None
    query = os.environ["BENCH_EXPORT_SQL"] + (f" WHERE c.id >= {found[0]}" if found else "")
    query += " ORDER BY c.period, c.id"
    if fmt == "xlsx":
        import django
        django.setup()  # for the sheet writer's module; before the baseline, so it is not counted
        from billing import exports
    baseline = peak_kb()
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(conninfo) as conn:
        if fmt == "csv":
            with open(os.devnull, "wb") as sink, conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
                for data in copy:  # one message per row
                    sink.write(data)
                    rows += 1
        else:
            import tempfile
            import zipfile
            sheet = exports._Sheet()
            with tempfile.TemporaryFile() as spool:
                with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as package:
                    for name, body in exports.PACKAGE.items():
                        package.writestr(name, exports.XML_HEAD + body)
                    package.writestr("xl/workbook.xml", exports.XML_HEAD + '<workbook xmlns="%s" xmlns:r="%s">'
                                     '<sheets><sheet name="charges" sheetId="1" r:id="rId1"/></sheets></workbook>'
                                     % (exports.MAIN, exports.DOCUMENT))
                    with package.open("xl/worksheets/sheet1.xml", "w") as part, conn.cursor(name="export") as cursor:
                        cursor.itersize = 2000
                        cursor.execute(query)
                        batch = [exports.XML_HEAD + '<worksheet xmlns="%s"><sheetData>' % exports.MAIN,
                                 sheet.header("zh")]
                        for row in cursor:
                            batch.append(sheet.data_row(row))
                            rows += 1
                            if len(batch) >= 1000:
                                part.write("".join(batch).encode())
                                batch = []
                        batch.append("</sheetData></worksheet>")
                        part.write("".join(batch).encode())
seconds = time.perf_counter() - started
peak = peak_kb()
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak / 1024, "baseline_mb": baseline / 1024}))
"""

# The export's 24 columns (billing.exports.HEADERS), as plain values.
EXPORT_SQL = """
SELECT c.id, c.period, c.service_start AT TIME ZONE 'Asia/Shanghai', c.kind, a.number, a.name,
       CASE WHEN a.kind = 'project' THEN a.number END, a.funding_programme,
       coalesce(nullif(a.billing_name, ''), o.name_zh), p.name_zh, i.name_zh, i.asset_number,
       coalesce(nullif(u.full_name, ''), u.username), sr.id, c.quantity, c.unit, c.unit_price, c.surcharge, c.amount,
       c.voucher_amount, c.amount - c.voucher_amount, c.currency, inv.number, c.reason
FROM billing_charge c JOIN billing_billingaccount a ON a.id = c.account_id
JOIN accounts_organization o ON o.id = a.organization_id JOIN accounts_organization p ON p.id = c.provider_id
JOIN catalog_instrument i ON i.id = c.instrument_id LEFT JOIN accounts_user u ON u.id = c.user_id
LEFT JOIN usage_servicerecord sr ON sr.item_id = c.item_id LEFT JOIN billing_invoice inv ON inv.id = c.invoice_id
"""


def _export(ctx: Context, kind: str, fmt: str, limit: int) -> dict:
    env = {**os.environ, **ctx.env, "BENCH_CONNINFO": ctx.conninfo or "", "BENCH_EXPORT_SQL": EXPORT_SQL}
    done = subprocess.run([sys.executable, "-c", SCRIPT, kind, fmt, str(limit)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode:
        raise RuntimeError(f"export subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> list[Result]:
    try:
        from billing import exports  # noqa: F401
        from billing.models import Charge
    except ImportError as error:
        return [pending(FIGURE, "CSV ≥ 100,000 rows/s, XLSX ≥ 20,000 rows/s, ≤ 150 MB", f"billing export ({error})")]
    charges = Charge.objects.count()
    results = []
    formats = (("csv", 100_000, 0), ("xlsx", 20_000, ctx.size(smoke=0, quick=0, full=200_000)))
    for fmt, target_rate, limit in formats[:1] if ctx.scale == "smoke" else formats:
        ours = _export(ctx, "ours", fmt, limit)
        rate = ours["rows"] / ours["seconds"] if ours["seconds"] else 0.0
        raw = _export(ctx, "raw", fmt, limit) if ctx.postgres else None
        raw_rate = raw["rows"] / raw["seconds"] if raw and raw["seconds"] else None
        details = {"charges_in_database": charges, "rows": ours["rows"], "seconds": ours["seconds"],
                   "peak_mb": ours["peak_mb"], "baseline_mb_after_django_setup": ours["baseline_mb"], "raw": raw}
        results.append(Result(f"{FIGURE} {fmt.upper()}: rows/s", rate, "/s", raw=raw_rate,
                              target=f"≥ {target_rate:,}/s", met=rate >= target_rate, better="higher",
                              details=details))
        results.append(Result(f"{FIGURE} {fmt.upper()}: peak memory", ours["peak_mb"], "MB",
                              raw=raw["peak_mb"] if raw else None, target="≤ 150 MB", met=ours["peak_mb"] <= 150,
                              details={"rows": ours["rows"], "baseline_mb_after_django_setup": ours["baseline_mb"],
                                       "growth_mb": ours["peak_mb"] - ours["baseline_mb"]}))
    return results
