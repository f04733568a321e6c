from django import template

from oversight.charts import format_cell

register = template.Library()


@register.filter
def cell(value, kind: str = "number") -> str:
    """``{{ row.share_rate|cell:"ratio" }}``: a figure as the tables show it (— when there is none)."""
    return format_cell(value, kind)


@register.filter
def percent(value) -> str:
    return format_cell(value, "ratio")
