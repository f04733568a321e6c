"""Free text that one user types and others read: one policy, applied where the text is saved and
again wherever it is shown.

**Plain text is the rule.** Booking purposes and reasons, notes, justifications, review comments,
names, addresses: stored exactly as typed and never interpreted as markup. Each output escapes for
its own context: HTML pages through Django's autoescape (``|linebreaksbr`` keeps the lines), the
charts' data through ``json_script``, invoice PDFs through reportlab's XML escaping, CSV/XLSX with
the formula guard (``core.spreadsheets``), e-mail as text/plain
only, iCalendar as RFC 5545 text. JSON API fields are data: a client shows them as text.

**Rich text is the exception**, for the instrument's description (main functions, technical
specifications, services, requirements for users): scientific specifications need sub- and
superscripts (10<sup>-9</sup> mbar, CO<sub>2</sub>), and labs paste lists and emphasis. Those fields
accept the tags in ``RICH_TEXT_TAGS`` and nothing else: no attributes (so no ``style``, no event
handlers), no links, no images. ``clean_rich_text`` (nh3, the Rust ammonia sanitizer) runs when they
are saved and again when they are shown, on the page (``|rich_text``) and in the API, so a row that
reached the database another way is shown safely too. Text without markup stays plain text, also
when it holds a lone ``<`` ("0<T<300 K"): nh3 only treats complete tags as markup. In text that
does hold markup, HTML rules apply: a ``<`` followed by a letter opens a tag, so write ``&lt;``.

One-line fields (names, numbers, addresses) refuse line breaks and control characters: they go into
e-mail subjects and calendar titles.
"""

from __future__ import annotations

import html

import nh3
from django.template.defaultfilters import linebreaksbr
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

RICH_TEXT_TAGS = frozenset({"b", "strong", "i", "em", "u", "sub", "sup", "br", "p", "ul", "ol", "li"})
BLOCK_TAGS = ("<p>", "<ul>", "<ol>", "<li>")
CONTROL_CHARACTERS = {chr(code) for code in (*range(0x00, 0x20), 0x7F)}


def _sanitize(value: str) -> str:
    return nh3.clean(value, tags=set(RICH_TEXT_TAGS), attributes={}, strip_comments=True, link_rel=None)


def clean_rich_text(value: str) -> str:
    """The value with every tag outside the allow-list removed, and every attribute.

    Text without markup comes back as it was. Markup comes back as a sanitized HTML fragment; if
    sanitizing left no tag at all, the fragment is turned back into plain text, and checked again
    (its entities may have spelled out a tag).
    """
    for _attempt in range(5):
        if not value or not nh3.is_html(value):
            return value
        cleaned = _sanitize(value)
        if nh3.is_html(cleaned):
            return cleaned
        value = html.unescape(cleaned)
    return escape(value)  # never reached by real input; a safe answer regardless


def render_rich_text(value: str) -> SafeString:
    """A rich-text field for an HTML page: allowed markup kept, everything else escaped, lines kept."""
    value = clean_rich_text(value or "")
    if not nh3.is_html(value):
        return linebreaksbr(value, autoescape=True)
    if any(tag in value for tag in BLOCK_TAGS):
        return mark_safe(value)  # noqa: S308 - sanitized by nh3 just above
    return mark_safe(value.replace("\r\n", "\n").replace("\n", "<br>\n"))  # noqa: S308 - sanitized, <br> allowed


def has_control_characters(value: str) -> bool:
    """Line breaks, tabs or other control characters: not allowed in one-line fields (names go into
    e-mail subjects and calendar titles, where a line break breaks the message)."""
    return any(character in CONTROL_CHARACTERS for character in value)
