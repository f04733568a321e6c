"""``{{ instrument.specifications|rich_text }}``: see ``instrumentshare.core.text`` for the policy."""

from django import template

from instrumentshare.core.text import render_rich_text

register = template.Library()


@register.filter(name="rich_text", is_safe=True)
def rich_text(value) -> str:
    return render_rich_text(str(value or ""))
