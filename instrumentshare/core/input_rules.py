"""Rules every input obeys, written once here and applied to every request, not per route.

**The string rule.** No string a client sends -- a JSON body field, a query parameter, a form field
of the API, a path segment, a key -- may hold NUL or another control character (U+0000..U+001F,
U+007F) other than tab, line feed and carriage return, which multi-line text needs. PostgreSQL
refuses NUL in text, and the other characters break e-mail subjects, calendar titles and exports.
The API answers 422 naming the field (``{"field": "body.purpose", ...}``), like any other invalid
field; a page's query string answers 400. Fields that must be one line refuse tab and line breaks
too, in their own schema or form (``core.text.has_control_characters``). Page forms refuse NUL
through Django's own ``CharField`` validator, as a form error.

**Malformed bodies.** A ``multipart/form-data`` request whose body cannot be parsed, and a JSON body
that is not JSON, are a 400, never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.translation import gettext as _

# Tab, line feed and carriage return stay allowed: multi-line text needs them.
FORBIDDEN_CONTROL_CHARACTERS = frozenset(chr(code) for code in (*range(0x00, 0x20), 0x7F)) - {"\t", "\n", "\r"}
CONTROL_CHARACTER_MESSAGE = "Control characters (such as NUL) are not allowed."
# The same set as a regular-expression character class, written once (tests/security hold it equal to the
# set above for every code point): as a pattern for the OpenAPI document and for schemas that state it
# themselves, and compiled for the check every request's path, query and JSON strings go through (a
# search in C, not a Python loop over each character).
_CLASS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
NO_CONTROL_CHARACTERS = f"^[^{_CLASS}]*$"
_FORBIDDEN = re.compile(f"[{_CLASS}]")


def has_forbidden_characters(value: str) -> bool:
    return _FORBIDDEN.search(value) is not None


def forbidden_strings(data, location: str) -> Iterator[str]:
    """The dotted location of every string (or key) in ``data`` that breaks the rule."""
    if isinstance(data, str):
        if has_forbidden_characters(data):
            yield location
    elif isinstance(data, dict):
        for key, value in data.items():
            name = f"{location}.{key}"
            if isinstance(key, str) and has_forbidden_characters(key):
                yield f"{location}.{key!r}"
            yield from forbidden_strings(value, name)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from forbidden_strings(value, f"{location}.{index}")


def _querydict_fields(querydict, location: str) -> Iterator[str]:
    for key, values in querydict.lists():
        if has_forbidden_characters(key):
            yield f"{location}.{key!r}"
        elif any(has_forbidden_characters(value) for value in values):
            yield f"{location}.{key}"


def _json_fields(request: HttpRequest) -> Iterator[str]:
    if not request.content_type or "json" not in request.content_type or not _fits_in_memory(request) \
            or not request.body:
        return  # a body over the limit is the API's 413, said in JSON
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return  # ninja answers a body that is not JSON with a 400 of its own
    yield from forbidden_strings(data, "body")


def _fits_in_memory(request: HttpRequest) -> bool:
    """Small bodies are read whole (and checked); a large upload streams to its route untouched."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _api_fields(request: HttpRequest) -> list[str]:
    fields = [*(["path"] if has_forbidden_characters(request.path) else []),
              *_querydict_fields(request.GET, "query")]
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            if _fits_in_memory(request):
                request.body  # noqa: B018 - kept, so that a route reading a JSON body can still read it
                fields += [*_querydict_fields(request.POST, "form")]
        else:
            fields += [*_json_fields(request)]
    return fields


def _api_refusal(fields: list[str]) -> JsonResponse:
    errors = [{"field": field, "message": CONTROL_CHARACTER_MESSAGE, "type": "control_characters"}
              for field in fields]
    detail = "; ".join(f"{field}: {CONTROL_CHARACTER_MESSAGE}" for field in fields)
    return JsonResponse({"code": "invalid", "detail": detail, "errors": errors}, status=422)


def _malformed(request: HttpRequest, is_api: bool):
    if is_api:
        return JsonResponse({"code": "bad_request", "detail": "The request body is malformed."}, status=400)
    return render(request, "core/error.html", {"status": 400, "message": _("The request is malformed.")},
                  status=400)


class InputRulesMiddleware:
    """Applies the module's rules before any view, form, login or rate limiter sees the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        is_api = request.path.startswith("/api/")
        try:
            refused = self._refused(request, is_api)
        except MultiPartParserError:
            return _malformed(request, is_api)
        return refused or self.get_response(request)

    @staticmethod
    def _refused(request: HttpRequest, is_api: bool):
        if is_api:
            fields = _api_fields(request)
            return _api_refusal(fields) if fields else None
        if request.method == "POST" and request.content_type == "multipart/form-data":
            request.POST  # noqa: B018 - parse now, so a malformed body is a 400 here and not a 500 in a view
        if has_forbidden_characters(request.path) or any(_querydict_fields(request.GET, "query")):
            return render(request, "core/error.html",
                          {"status": 400, "message": _(CONTROL_CHARACTER_MESSAGE)}, status=400)
        return None
