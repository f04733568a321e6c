"""The dashboard's charts: each one the data for Chart.js and the same data as a table (and CSV).

A chart is built from ``queries`` only; the page draws it, shows the table beside it and links
its CSV, which carries every row (the page shows the first ones where a list is long).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from . import queries
from .conf import setting
from .queries import Scope

PAGE_ROWS = 15
CHART_KEYS = ("utilization", "monthly", "share", "top", "idle", "districts")


@dataclass
class Chart:
    key: str
    title: str
    kind: str  # "bar" or "line"
    labels: list[str] = field(default_factory=list)
    datasets: list[dict] = field(default_factory=list)  # {"label": str, "data": [number]}
    headers: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # per column: text, number, money, ratio
    rows: list[list] = field(default_factory=list)
    horizontal: bool = False
    percent: bool = False
    note: str = ""
    more: int = 0  # rows not shown on the page (they are in the CSV)

    @property
    def script_id(self) -> str:
        return f"chart-data-{self.key}"

    @property
    def display_rows(self) -> list[list[str]]:
        return [[format_cell(value, kind) for value, kind in zip(row, self.kinds, strict=True)] for row in self.rows]

    def for_script(self) -> dict:
        return {"kind": self.kind, "labels": self.labels, "horizontal": self.horizontal, "percent": self.percent,
                "datasets": [{"label": d["label"], "data": [_number(v) for v in d["data"]]} for d in self.datasets]}

    def as_dict(self) -> dict:
        return {"key": self.key, "title": self.title, **self.for_script(), "headers": self.headers,
                "rows": [[_plain(value) for value in row] for row in self.rows], "note": self.note}


def format_cell(value, kind: str) -> str:
    """A table cell as people read it: ratios as percentages, money and hours with separators."""
    if value is None or value == "":
        return "—"
    if kind == "ratio":
        return f"{Decimal(value) * 100:.1f}%"
    if kind == "money":
        return f"{Decimal(value):,.2f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _number(value) -> float:
    return float(value) if value is not None else 0.0


def _plain(value):
    return str(value) if isinstance(value, Decimal) else value


def _percent(value: Decimal | None) -> Decimal | None:
    return (value * 100).quantize(Decimal("0.1")) if value is not None else None


@dataclass(frozen=True)
class View:
    """What the dashboard looks at: the caller's scope, a year, optionally one organization or lab."""

    scope: Scope
    year: int
    organization_id: int | None = None
    lab_id: int | None = None
    today: dt.date | None = None

    @property
    def narrowing(self) -> dict:
        return {"organization_id": self.organization_id, "lab_id": self.lab_id}


def utilization(view: View, limit: int | None = PAGE_ROWS) -> Chart:
    buckets = queries.utilization_distribution(view.scope, year=view.year, today=view.today, **view.narrowing)
    chart = Chart("utilization", _("Utilization distribution"), "bar", headers=[_("Utilization"), _("Instruments")],
                  kinds=["text", "number"])
    chart.labels = [label for label, _count in buckets]
    chart.datasets = [{"label": _("Instruments"), "data": [count for _label, count in buckets]}]
    chart.rows = [[label, count] for label, count in buckets]
    chart.note = _("Effective machine hours against the annual quota (pro rata in the current year).")
    return chart


def monthly(view: View, limit: int | None = PAGE_ROWS) -> Chart:
    months = queries.monthly(view.scope, year=view.year, **view.narrowing)
    chart = Chart("monthly", _("Machine hours by month"), "bar",
                  headers=[_("Month"), _("Effective hours"), _("External hours"), _("Share rate"), _("Sessions"),
                           _("Income (CNY)")], kinds=["text", "number", "number", "ratio", "number", "money"])
    chart.labels = [f"{view.year}-{row['month']:02d}" for row in months]
    chart.datasets = [{"label": _("Effective hours"), "data": [row["effective_hours"] for row in months]},
                      {"label": _("External hours"), "data": [row["external_hours"] for row in months]}]
    chart.rows = [[label, row["effective_hours"], row["external_hours"], row["share_rate"], row["sessions"],
                   row["income"]] for label, row in zip(chart.labels, months, strict=True)]
    return chart


def share(view: View, limit: int | None = PAGE_ROWS) -> Chart:
    by = "lab" if not view.scope.everything and not view.scope.organization_ids else "organization"
    rows = queries.summarize(view.scope, year=view.year, by=by, today=view.today, **view.narrowing)
    rows = [row for row in rows if row.effective_minutes]
    title = _("Share rate by organization") if by == "organization" else _("Share rate by lab")
    chart = Chart("share", title, "bar", horizontal=True, percent=True,
                  headers=[_("Organization") if by == "organization" else _("Lab"), _("Effective hours"),
                           _("External hours"), _("Share rate")], kinds=["text", "number", "number", "ratio"])
    shown = rows[:limit] if limit else rows
    chart.more = len(rows) - len(shown)
    chart.labels = [row.label for row in shown]
    chart.datasets = [{"label": _("Share rate (%)"), "data": [_percent(row.share_rate) for row in shown]}]
    chart.rows = [[row.label, row.effective_hours, row.external_hours, row.share_rate] for row in shown]
    chart.note = _("External service hours ÷ effective machine hours; the busiest first.")
    return chart


def _instrument_chart(key: str, title: str, rows: list, *, percent: bool) -> Chart:
    chart = Chart(key, title, "bar", horizontal=True, percent=percent,
                  headers=[_("Instrument"), _("Asset number · organization"), _("Effective hours"),
                           _("Utilization")], kinds=["text", "text", "number", "ratio"])
    chart.labels = [row.label for row in rows]
    if percent:
        chart.datasets = [{"label": _("Utilization (%)"), "data": [_percent(row.utilization) for row in rows]}]
    else:
        chart.datasets = [{"label": _("Effective hours"), "data": [row.effective_hours for row in rows]}]
    chart.rows = [[row.label, row.detail, row.effective_hours, row.utilization] for row in rows]
    return chart


def top(view: View, limit: int | None = 10) -> Chart:
    rows = queries.top_instruments(view.scope, year=view.year, limit=limit, today=view.today, **view.narrowing)
    return _instrument_chart("top", _("Top instruments by effective hours"), rows, percent=False)


def idle(view: View, limit: int | None = 10) -> Chart:
    rows, total = queries.idle_instruments(view.scope, year=view.year, limit=limit, today=view.today,
                                           **view.narrowing)
    chart = _instrument_chart("idle", _("Idle instruments"), rows, percent=True)
    threshold = int(Decimal(setting("OVERSIGHT_IDLE_UTILIZATION")) * 100)
    chart.note = _("%(count)s instruments below %(threshold)s%% utilization; the least used first.") % {
        "count": total, "threshold": threshold}
    chart.more = total - len(rows)
    return chart


def districts(view: View, limit: int | None = PAGE_ROWS) -> Chart:
    rows = queries.external_users_by_district(view.scope, year=view.year, **view.narrowing)
    chart = Chart("districts", _("External users by district"), "bar",
                  headers=[_("District"), _("External users"), _("External organizations")],
                  kinds=["text", "number", "number"])
    shown = rows[:limit] if limit else rows
    chart.more = len(rows) - len(shown)
    chart.labels = [row["district"] for row in shown]
    chart.datasets = [{"label": _("External users"), "data": [row["users"] for row in shown]},
                      {"label": _("External organizations"), "data": [row["organizations"] for row in shown]}]
    chart.rows = [[row["district"], row["users"], row["organizations"]] for row in shown]
    chart.note = _("Where external users come from: the district of their organization.")
    return chart


BUILDERS = {"utilization": utilization, "monthly": monthly, "share": share, "top": top, "idle": idle,
            "districts": districts}


def build(key: str, view: View, *, full: bool = False) -> Chart:
    return BUILDERS[key](view, None if full else (10 if key in ("top", "idle") else PAGE_ROWS))


def build_all(view: View) -> list[Chart]:
    return [build(key, view) for key in CHART_KEYS]


# The figures' key names the refresh that produced them, so they are never stale: they may live until
# after the next (hourly) refresh, when the new key takes over.
FIGURES_SECONDS = 2 * 3600


def dashboard_figures(view: View, refresh) -> dict:
    """The dashboard's totals and charts. They read only the summary tables, which change only when a
    refresh runs, so they are cached under the refresh's time (and the day, for the pro-rata quota,
    and the language of the labels): a new refresh is a new key, never a stale page. The refresh
    itself fills the city-wide entries (``services.warm_dashboard``), so the bureau's first request
    after it does not compute them."""
    stamp = refresh.refreshed_at.isoformat() if refresh else "never"
    key = (f"oversight:dashboard:{view.year}:{stamp}:{timezone.localdate()}:{get_language()}:"
           f"{queries.scope_key(view.scope)}:{view.organization_id}:{view.lab_id}")
    figures = cache.get(key)
    if figures is None:
        totals = queries.summarize(view.scope, year=view.year, by="city", **view.narrowing)
        figures = {"charts": build_all(view), "totals": totals[0] if totals else queries.StatRow(key=None)}
        cache.set(key, figures, FIGURES_SECONDS)
    return figures
