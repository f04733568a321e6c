"""Pages map a refused service call (a ``DomainError``) in one place, as the API does in
``instrumentshare/api.py``: what the user may not see is a 404 page; any other refusal is a message on
the page the user returns to. A view names that page with ``@refusals_return_to(...)``; a refusal
from a view that names none returns to the page the user came from on this site, else home, through
``RefusalMiddleware`` -- so a rule saying no is never a server error on a page.

Forms that show a refusal beside their fields (booking, instrument and policy forms) catch it
themselves and hand it to the form; that is the form's mapping, not a page's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from .errors import DomainError


def _safe(request: HttpRequest, url: str | None) -> str | None:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                              require_https=request.is_secure()):
        return url
    return None


def refuse(request: HttpRequest, error: DomainError, back: str,
           message: Callable[[DomainError], str] | None = None) -> HttpResponse:
    """The page's answer to a refusal: 404 stays 404; otherwise the message, and back to ``back``."""
    if error.status == 404:
        raise Http404(error.detail) from error
    messages.error(request, message(error) if message else error.detail)
    return redirect(back)


def attempt(request: HttpRequest, action: Callable[[], object], success: str,
            message: Callable[[DomainError], str] | None = None, *, named_in_form: bool = False) -> bool:
    """Run one service call for a page that stays where it is: the success message and True, or the
    refusal's message and False, for a view that then re-shows its form. A 404 stays a 404, unless the
    object was ``named_in_form`` (its id came in the posted form, not in the URL): then "no such ..." is
    a message on the page like any other refusal."""
    try:
        action()
    except DomainError as error:
        if error.status == 404 and not named_in_form:
            raise Http404(error.detail) from error
        messages.error(request, message(error) if message else error.detail)
        return False
    messages.success(request, success)
    return True


def refusals_return_to(where: str | Callable[..., str], *, message: Callable[[DomainError], str] | None = None):
    """Mark a page view: a ``DomainError`` it raises returns the user to ``where`` with the message.

    ``where`` is a URL name, reversed with the view's own URL arguments when it takes them (else none),
    or a callable ``(request, **view_kwargs) -> url``. ``message`` says the refusal in the page's
    language (an app's table of its rules' codes); by default the service's own words.
    """
    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except DomainError as error:
                return refuse(request, error, _target(where, request, kwargs), message)
        return wrapped
    return decorate


def _target(where, request: HttpRequest, kwargs: dict) -> str:
    if callable(where):
        return where(request, **kwargs)
    try:
        return reverse(where, kwargs=kwargs)
    except NoReverseMatch:
        return reverse(where)


class RefusalMiddleware:
    """The fallback for page views that name no return page (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DomainError) or request.path.startswith("/api/"):
            return None
        back = _safe(request, request.POST.get("next")) or _safe(request, request.headers.get("Referer")) or "/"
        return refuse(request, exception, back)
