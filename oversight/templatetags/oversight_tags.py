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


@register.inclusion_tag("oversight/_freshness.html", takes_context=True)
def freshness(context, year: int, *, polling: bool = False):
    """When the figures of ``year`` were computed, a refresh under way (with its progress, polled), and
    the bureau's "refresh now" button."""
    from instrumentshare.accounts import queries as people
    from oversight import queries

    request = context["request"]
    return {"request": request, "year": year, "refresh": queries.last_refresh(year),
            "progress": queries.refresh_progress(year), "polling": polling,
            "is_admin": people.is_platform_admin(request.user), "csrf_token": context.get("csrf_token")}
