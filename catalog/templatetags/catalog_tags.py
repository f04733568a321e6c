from django import template
from django.utils import timezone

from catalog.hours import format_minute

register = template.Library()


@register.filter
def hhmm(minute):
    return format_minute(minute)


@register.filter
def yuan(value):
    """Whole yuan with thousands separators (3,800,000), the same in every language."""
    if value in (None, ""):
        return ""
    return f"{value:,.0f}"


@register.filter
def in_zone(value, zone):
    """A stored (UTC) time shown in the instrument's zone: ``{{ downtime.start|in_zone:instrument.zone }}``.

    Naive on purpose: the ``date`` filter would otherwise convert an aware time to the page's zone again.
    """
    if value is None:
        return ""
    return timezone.make_naive(value, zone)


@register.simple_tag(takes_context=True)
def query_with(context, **changes):
    """The current query string with some parameters replaced (for pagination links)."""
    query = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            query.pop(key, None)
        else:
            query[key] = value
    return query.urlencode()
