"""Catalog search "category C, district D, free ≥ 2 h in the next 7 days", first page, against one SQL statement."""

from __future__ import annotations

import datetime as dt
import time

from .harness import Context, Result, median, percentile, skipped
from .rawsql import SEARCH

FIGURE = "search: category + district + free ≥ 2 h in 7 days"
MINUTES = 120


def _combinations(count: int) -> list[tuple[str, str, int]]:
    """The (level-2 category, district) pairs holding the most published instruments: the realistic worst cases."""
    from django.db.models import Count
    from django.db.models.functions import Substr

    from catalog.models import Instrument

    rows = (Instrument.objects.filter(listing_state="published").annotate(prefix=Substr("category_id", 1, 4))
            .values("prefix", "district").annotate(n=Count("id")).order_by("-n", "prefix", "district")[:count])
    return [(row["prefix"] + "00", row["district"], row["n"]) for row in rows]


def _our_search(category: str, district: str, now: dt.datetime):
    """What the catalog page does: catalog.queries.search_instruments with bookings' free-time filter."""
    from bookings.availability import instruments_free_for
    from catalog import queries

    end = now + dt.timedelta(days=7)

    def free_filter(queryset):
        return queryset.filter(pk__in=queries.one_of(instruments_free_for(queryset, now, end, MINUTES, now=now)))

    queryset = queries.search_instruments(None, category=category, district=district, free_filter=free_filter)
    page = queries.paginate(queryset, page=1, page_size=queries.DEFAULT_PAGE_SIZE, count_in_page=True)
    return page.count, [instrument.pk for instrument in page.items]


def run(ctx: Context) -> list[Result]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    combinations = _combinations(ctx.size(smoke=3, quick=8, full=12))
    if not combinations:
        return [skipped(FIGURE, "p50 ≤ 50 ms", "no published instruments")]
    now = max(dt.datetime.now(dt.UTC), ctx.anchor)
    repeat = ctx.size(smoke=1, quick=3, full=3)
    _our_search(*combinations[0][:2], now)  # warm up
    with CaptureQueriesContext(connection) as queries_run:
        _our_search(*combinations[0][:2], now)
    ours, answers = [], {}
    for category, district, _n in combinations:
        for _ in range(repeat):
            started = time.perf_counter()
            answers[(category, district)] = _our_search(category, district, now)
            ours.append((time.perf_counter() - started) * 1000)
    p50 = median(ours)
    result = Result(FIGURE, p50, "ms", target="p50 ≤ 50 ms", met=p50 <= 50, better="lower", details={
        "p99": percentile(ours, 99), "searches": len(ours), "queries_per_search": len(queries_run.captured_queries),
        "candidates": {f"{c} {d}": n for c, d, n in combinations},
        "matches": {f"{c} {d}": answers[(c, d)][0] for c, d, _n in combinations},
        "instruments": _instrument_count()})
    if not ctx.postgres:
        result.note = "raw limit skipped: it uses PostgreSQL multiranges"
        return [result]
    raw, differing = [], 0
    with ctx.raw_connection(autocommit=True) as conn:
        for category, district, _n in combinations:
            params = {"prefix": category[:4] + "%", "district": district, "start": now,
                      "end": now + dt.timedelta(days=7), "now": now, "minutes": MINUTES, "limit": 20}
            conn.execute(SEARCH, params).fetchall()
            for _ in range(repeat):
                started = time.perf_counter()
                rows = conn.execute(SEARCH, params).fetchall()
                raw.append((time.perf_counter() - started) * 1000)
            count = rows[0][1] if rows else 0
            differing += (count, [row[0] for row in rows]) != answers[(category, district)]
    result.raw = median(raw)
    result.details["answers_differing_from_raw"] = differing
    result.details["raw_p99"] = percentile(raw, 99)
    return [result]


def _instrument_count() -> int:
    from catalog.models import Instrument

    return Instrument.objects.count()
